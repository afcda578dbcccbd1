"""The TFRecord schema: the one place that says what a record holds and how shards are named.

Each record is a `tf.train.Example` with these features:

| key                 | type   | what                                              |
|---------------------|--------|---------------------------------------------------|
| image/encoded       | bytes  | the image as RGB JPEG bytes                       |
| image/class/label   | int64  | class index, 0-based, the line number in labels.txt |
| image/class/text    | bytes  | class name (the folder name, e.g. a WordNet synset) |
| image/height        | int64  | height of the encoded image in pixels             |
| image/width         | int64  | width of the encoded image in pixels              |
| image/filename      | bytes  | source file, relative to the converted tree's root |

A converted dataset directory holds `{split}-{index:05d}-of-{count:05d}.tfrecord`
shards, `labels.txt` (one class name per line, line i is label i) and
`{split}.json` (record count per shard and per class, files skipped or repaired).
"""

import dataclasses
import functools
import json
import os

from alexnet_dist.data.tfrecord_io import example_bytes

LABELS_FILE = "labels.txt"
VERSION = 1  # of the record layout below; an interrupted conversion resumes only within one


class DataError(ValueError):
    """Data that cannot be read as asked; the message names the folder, file or shard."""


class ConversionError(Exception):
    """Input that alexnet-convert cannot turn into a dataset; the message names the culprit."""


@functools.cache
def features() -> dict:
    """The records' features for tf.io.parse_*; TensorFlow is loaded only by readers
    (alexnet-convert writes without it)."""
    import tensorflow as tf

    return {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/class/text": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
    }


@dataclasses.dataclass(frozen=True)
class Record:
    """One labelled image, as stored."""

    encoded: bytes
    label: int
    class_name: str
    height: int
    width: int
    filename: str


def serialize(record: Record) -> bytes:
    """Encodes a record as a serialized `tf.train.Example` (the bytes of TensorFlow's
    SerializeToString(deterministic=True): same record, same bytes)."""
    return example_bytes({
        "image/encoded": record.encoded,
        "image/class/label": record.label,
        "image/class/text": record.class_name.encode(),
        "image/height": record.height,
        "image/width": record.width,
        "image/filename": record.filename.encode(),
    })  # fmt: skip


def parse(serialized):
    """Parses one serialized record (a string tensor) into a dict of tensors keyed as in
    `features()`."""
    import tensorflow as tf

    return tf.io.parse_single_example(serialized, features())


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_pattern(split: str) -> str:
    return f"{split}-?????-of-?????.tfrecord"


def read_labels(directory: str) -> list[str]:
    """Reads the class names of a converted dataset, in label order."""
    path = os.path.join(directory, LABELS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no label map {path}: is {directory} a converted dataset?")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"label map {path} is empty")
    return names


def read_split_info(directory: str, split: str) -> dict:
    """Reads `{split}.json`, the converter's report for one split."""
    path = os.path.join(directory, f"{split}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no split report {path}: convert the {split!r} split into {directory} first "
            "(alexnet-convert --split ...)"
        )
    with open(path) as f:
        return json.load(f)
