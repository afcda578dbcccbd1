"""How fast the input pipeline runs (alexnet-bench-input's figures, tests/cli/)."""

import pytest
import tensorflow as tf

from alexnet_dist.data.pipeline import make_dataset
from alexnet_dist.data.schema import DataError
from alexnet_dist.data.throughput import decode_only, measure
from tests.helpers import input_spec


def test_the_floor_decodes_crop_windows_into_uint8_batches(shapes_records):
    records, _ = shapes_records
    images, labels = next(iter(decode_only(input_spec(records))))
    assert images.dtype == tf.uint8 and images.shape == (8, 67, 67, 3)
    assert labels.dtype == tf.int32 and labels.shape == (8,)


def test_measure_times_batches_within_epochs_and_their_starts_apart(shapes_records):
    records, _ = shapes_records
    spec = input_spec(records)
    rate, start = measure(lambda epoch: make_dataset(spec, epoch=epoch), warmup=2, steps=20)
    assert rate > 0 and start > 0  # 15 batches an epoch: two epochs were read
    with pytest.raises(DataError, match="fewer than two batches"):
        measure(lambda epoch: make_dataset(input_spec(records, batch_size=64), epoch), 0, 3)
