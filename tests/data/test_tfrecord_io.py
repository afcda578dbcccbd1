"""TFRecord files and Example records written without TensorFlow: the bytes TensorFlow
writes, and damaged or hostile files refused with their place named."""

import struct

import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.data.tfrecord_io import (
    RecordError,
    RecordWriter,
    example_bytes,
    frame,
    iter_records,
    masked_crc,
)


def test_examples_are_the_bytes_tensorflow_serialises():
    for features in [
        {"image/encoded": b"\xff\xd8 jpeg", "image/class/label": 3, "image/filename": b"a/b.jpg"},
        {"b": b"", "a": 0, "c": 2**40, "d": -1, "e": b"x" * 300},
    ]:
        feature = {
            k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) if isinstance(v, bytes)
            else tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
            for k, v in features.items()
        }  # fmt: skip
        want = tf.train.Example(features=tf.train.Features(feature=feature))
        assert example_bytes(features) == want.SerializeToString(deterministic=True)


def test_a_file_written_here_is_one_tensorflow_writes_and_reads(tmp_path):
    records = [b"", b"one", bytes(np.random.default_rng(0).integers(0, 256, 70_000, np.uint8))]
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"
    with RecordWriter(str(ours)) as writer:
        for r in records:
            writer.write(r)
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for r in records:
            writer.write(r)
    assert ours.read_bytes() == theirs.read_bytes()
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records
    assert list(iter_records(str(ours), max_length=70_000)) == records


def test_a_huge_length_is_refused_before_it_is_read(tmp_path):
    # A valid frame header that declares 2^40 bytes: TensorFlow's reader would allocate
    # that much before finding the file short.
    length = struct.pack("<Q", 2**40)
    path = tmp_path / "hostile.tfrecord"
    path.write_bytes(frame(b"fine") + length + struct.pack("<I", masked_crc(length)) + b"x")
    with pytest.raises(RecordError, match=rf"{path}: a record of 1,099,511,627,776 bytes at "
                       r"byte 20, above the limit of 1,000"):  # fmt: skip
        list(iter_records(str(path), max_length=1000))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:8] + b"\0\0\0\0" + b[12:], "corrupt record length at byte 0"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "corrupt record at byte 0"),
        (lambda b: b[:-6], "truncated record at byte 0"),
        (lambda b: b + b"\0" * 5, "truncated record header at byte 20"),
    ],
)
def test_damage_is_named_with_its_place(tmp_path, damage, message):
    path = tmp_path / "damaged.tfrecord"
    path.write_bytes(damage(frame(b"fine")))
    with pytest.raises(RecordError, match=f"{path}: {message}"):
        list(iter_records(str(path), max_length=1000))
