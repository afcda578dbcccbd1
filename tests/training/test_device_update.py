"""OnVariableDevice: the project's optimizers update each variable with the slot copy on its
device, and without a tf.distribute strategy sum nothing."""

import keras
import tensorflow as tf

from alexnet_dist.training.device_update import OnVariableDevice
from alexnet_dist.training.lars import LARS


def test_without_a_strategy_the_gradients_pass_as_they_are():
    w = keras.Variable(tf.ones([2]), name="w")
    g = tf.constant([1.0, 2.0])
    optimizer = LARS(0.1)
    optimizer.build([w])
    assert optimizer._all_reduce_sum_gradients([(g, w)]) == [(g, w)]


def test_the_slot_copy_on_each_replicas_device_is_found():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # tests/conftest.py's
    with strategy.scope():
        w = keras.Variable(tf.ones([2]), name="w")
        slot = keras.Variable(tf.zeros([2]), name="slot")
        # Keras calls update_step in the strategy's scope, once per device's copy.
        copies = strategy.experimental_local_results(w.value)
        found = [OnVariableDevice.local_copy(slot, copy) for copy in copies]
    assert [f.device for f in found] == [c.device for c in copies]
    assert len({f.device for f in found}) == 2
