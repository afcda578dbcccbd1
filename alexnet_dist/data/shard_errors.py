"""Errors met while reading shards, turned into DataErrors that name the shard (and record).

TensorFlow's messages say what went wrong but not where: "truncated record at
54812", "No such file or directory", "assertion failed: [label out of range]".
On such an error the split's shards are read again one by one, in Python, to
find the culprit. That costs a pass over the split, once, when the run is
stopping anyway.
"""

import contextlib
import os

import tensorflow as tf

from alexnet_dist.data import schema

# In the message of the pipeline's label check (`checked_label`), to recognise it.
LABEL_OUT_OF_RANGE = "label out of range"


def checked_label(features: dict[str, tf.Tensor], num_classes: int) -> tf.Tensor:
    """The record's label as int32; with `num_classes`, an error if outside [0, num_classes).

    Without the check a bad label reached the loss, where it failed without a
    name (or, on GPUs, gave a NaN loss).
    """
    label = features["image/class/label"]
    if num_classes:
        ok = tf.logical_and(label >= 0, label < num_classes)
        with tf.control_dependencies([tf.debugging.Assert(ok, [LABEL_OUT_OF_RANGE, label])]):
            label = tf.identity(label)
    return tf.cast(label, tf.int32)


@contextlib.contextmanager
def naming_bad_shards(data_dir: str, split: str, num_classes: int = 0):
    """Turns a read error of `split` (a damaged or deleted shard, a label outside the
    label map) into a DataError that names the shard."""
    try:
        yield
    except tf.errors.NotFoundError as e:
        check_present(data_dir, split)
        raise schema.DataError(f"a {split!r} shard is missing: {_first_line(e)}") from None
    except tf.errors.DataLossError as e:
        raise _damaged(data_dir, split) or schema.DataError(
            f"reading the {split!r} shards in {data_dir} failed: {_first_line(e)}"
        ) from None
    except tf.errors.InvalidArgumentError as e:
        if LABEL_OUT_OF_RANGE not in e.message:
            raise
        raise _bad_label(data_dir, split, num_classes) or schema.DataError(
            f"a {split!r} record in {data_dir} has a label outside the {num_classes} classes "
            f"of {schema.LABELS_FILE} ({_first_line(e)})"
        ) from None


def check_present(data_dir: str, split: str) -> None:
    """A DataError naming the first shard that the split's report lists and the folder lacks.

    Each epoch lists the folder anew: without this, a shard deleted mid-run would
    only make the epoch come up short.
    """
    for path in _listed_shards(data_dir, split):
        if not tf.io.gfile.exists(path):
            raise schema.DataError(
                f"shard {path} is missing (listed in {split}.json: deleted, or its storage is "
                f"unmounted); restore it, or convert the {split!r} split again"
            )


def _listed_shards(data_dir: str, split: str) -> list[str]:
    """The shards in the folder and those the split's report lists (a deleted one too)."""
    found = set(tf.io.gfile.glob(os.path.join(data_dir, schema.shard_pattern(split))))
    with contextlib.suppress(OSError, ValueError, KeyError):  # no report: the folder's shards
        report = schema.read_split_info(data_dir, split)["shards"]
        found |= {os.path.join(data_dir, name) for name in report}
    return sorted(found)


def _shards(data_dir: str, split: str) -> list[str]:
    return [p for p in _listed_shards(data_dir, split) if tf.io.gfile.exists(p)]


def _damaged(data_dir: str, split: str) -> schema.DataError | None:
    for path in _shards(data_dir, split):
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError as damaged:
            detail = damaged.message.split("}}")[-1].split("[Op:")[0].strip()
            return schema.DataError(
                f"shard {path} is damaged ({detail}); convert the {split!r} split "
                "again, or restore the file from a copy"
            )
    return None


def _bad_label(data_dir: str, split: str, num_classes: int) -> schema.DataError | None:
    label_only = {"image/class/label": schema.features()["image/class/label"]}
    for path in _shards(data_dir, split):
        for index, record in enumerate(tf.data.TFRecordDataset(path)):
            label = int(tf.io.parse_single_example(record, label_only)["image/class/label"])
            if not 0 <= label < num_classes:
                labels = os.path.join(data_dir, schema.LABELS_FILE)
                return schema.DataError(
                    f"shard {path}, record {index} (counting from 0) has label {label}, outside "
                    f"the {num_classes} classes of {labels}; convert the {split!r} split "
                    "again with this label map"
                )
    return None


def _first_line(error: tf.errors.OpError) -> str:
    return error.message.strip().splitlines()[0].split("}}")[-1].strip()[:300]
