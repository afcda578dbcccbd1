"""Shared fixtures. Two logical CPU devices stand in for two GPUs in placement tests."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Must run before TensorFlow initialises its devices, hence at import time.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(scope="session")
def shapes_records(tmp_path_factory):
    """A small built-in dataset, rendered and converted once per test session."""
    from alexnet_dist.data import shapes

    cache = tmp_path_factory.mktemp("cache")
    spec = shapes.ShapesSpec(image_size=72, train_per_class=12, val_per_class=3)
    return shapes.prepare(str(cache), spec, workers=2), cache
