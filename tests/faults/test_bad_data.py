"""Damaged data met by a running job: a shard deleted or truncated, a label out of range."""

import os
import re
import shutil

import pytest
import tensorflow as tf

from tests.faults.conftest import assert_readable, train
from tests.helpers import finish

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def records(tmp_path, shapes_records):
    """A copy of the session's converted records (10 classes, 4 train shards), to damage."""
    copy = tmp_path / "records"
    shutil.copytree(shapes_records[0], copy)
    return copy


def _on(records, *overrides):
    return ["data=tfrecord", f"data.dir={records}", "data.resize_size=72", *overrides]


def _damage_when(proc, step: int, damage):
    """Calls damage() once `step`'s progress line is out; returns (code, stdout, stderr)."""
    for line in proc.stdout:
        if re.search(rf" step {step}/", line):
            damage()
            break
    return finish(proc)


@pytest.mark.fault_shard
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_shard_damaged_while_training_reads_it_is_named_and_the_checkpoint_kept(
    tmp_path, records, damage
):
    # Fault: a training shard is deleted, or cut short, while the job runs. Behaviour: the
    # run stops with a DataError naming the shard when it next reads it (here: the next
    # epoch; open files are read to their end). Lost: the steps since the newest
    # checkpoint, which stays readable.
    shard = records / "train-00001-of-00004.tfrecord"

    def act():
        if damage == "delete":
            shard.unlink()
        else:
            os.truncate(shard, os.path.getsize(shard) // 2)

    run_dir = tmp_path / "run"
    proc = train(run_dir, *_on(records, "trainer.max_steps=14"))
    code, out, err = _damage_when(proc, 2, act)  # 120 images, batch 16: 7 steps per epoch
    assert code == 1, out[-2000:] + err[-3000:]
    reason = "is missing (listed in train.json" if damage == "delete" else "is damaged"
    assert f"alexnet-train: error: shard {shard} {reason}" in err, err[-3000:]
    newest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert newest, "no checkpoint before the damage was met"
    assert_readable(newest)


@pytest.mark.fault_label
def test_label_outside_the_label_map_names_the_shard_and_record(tmp_path, records):
    # Fault: a record's label is outside labels.txt (a shard converted with another label
    # map). Behaviour: an error naming the shard and the record's index, at the batch that
    # holds it, before the loss sees it. Lost: nothing (no step trains on it).
    shard = records / "train-00002-of-00004.tfrecord"
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(str(shard))]
    example = tf.train.Example.FromString(serialized[5])
    example.features.feature["image/class/label"].int64_list.value[:] = [1005]
    serialized[5] = example.SerializeToString()
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in serialized:
            writer.write(record)

    proc = train(tmp_path / "run", *_on(records, "trainer.max_steps=14"))
    code, out, err = finish(proc)
    assert code == 1, out[-2000:] + err[-3000:]
    assert (
        f"alexnet-train: error: shard {shard}, record 5 (counting from 0) has label 1005, "
        f"outside the 10 classes of {records}/labels.txt" in err
    ), err[-3000:]
    assert "Traceback" not in err
