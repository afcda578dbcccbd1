"""What a tf.function ran where, read from its executed graphs: ops by device, and the bytes
that crossed between devices."""

import pytest
import tensorflow as tf

from alexnet_dist.distribute import graph_trace


def test_ops_by_device_and_the_bytes_that_crossed():
    @tf.function
    def two_devices(x):
        with tf.device("/cpu:0"):
            y = x * 2.0
        with tf.device("/cpu:1"):
            return tf.reduce_sum(y)  # y (1000 float32 values) crosses to the second device

    x = tf.ones([1000])
    executed = graph_trace.trace(two_devices, x)
    assert executed.devices() == {"CPU:0", "CPU:1"}
    assert ("Mul", "CPU:0") in executed.ops.values() and ("Sum", "CPU:1") in executed.ops.values()
    assert executed.transfers[("CPU:0", "CPU:1")] == 4 * 1000
    with pytest.raises(RuntimeError, match="first call"):
        graph_trace.trace(two_devices, x)  # only a function's first call is collected
