"""The record schema and a converted dataset's label map and split reports."""

import fnmatch

import pytest
import tensorflow as tf

from alexnet_dist.data import schema


def test_a_record_round_trips_and_serialises_the_same_each_time():
    record = schema.Record(b"\xff\xd8jpeg", 7, "n01440764", 30, 40, "n01440764/x.JPEG")
    serialized = schema.serialize(record)
    assert serialized == schema.serialize(record)  # deterministic: byte-identical shards
    parsed = schema.parse(tf.constant(serialized))
    assert parsed["image/encoded"].numpy() == b"\xff\xd8jpeg"
    assert int(parsed["image/class/label"]) == 7
    assert parsed["image/class/text"].numpy() == b"n01440764"
    assert (int(parsed["image/height"]), int(parsed["image/width"])) == (30, 40)
    assert parsed["image/filename"].numpy() == b"n01440764/x.JPEG"


def test_shard_names_match_their_pattern():
    name = schema.shard_name("train", 3, 1024)
    assert name == "train-00003-of-01024.tfrecord"
    assert fnmatch.fnmatch(name, schema.shard_pattern("train"))
    assert not fnmatch.fnmatch(name, schema.shard_pattern("val"))


def test_a_folder_without_a_label_map_or_report_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no label map {tmp_path}/labels.txt"):
        schema.read_labels(str(tmp_path))
    (tmp_path / "labels.txt").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        schema.read_labels(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="convert the 'val' split"):
        schema.read_split_info(str(tmp_path), "val")
