"""Optimizer updates that run on their variable's device.

Without a tf.distribute strategy (single, Horovod) an op without a device lands on
the first one, and with the towers on two devices every tower-b gradient and
optimizer slot would cross over and back each step. The project's optimizers
(SGD, LARS, LAMB in training/optimizer.py and training/lars.py) take this mixin.
"""

import tensorflow as tf


class OnVariableDevice:
    """For the project's optimizers: each update runs on its variable's device, and without a
    tf.distribute strategy nothing is summed (Horovod sums in the step)."""

    @staticmethod
    def local_copy(slot, variable):
        """The copy of the optimizer variable `slot` on `variable`'s device: tf.distribute
        calls update_step once per device, with that device's copy of the variable."""
        value = slot.value
        local = tf.distribute.get_strategy().experimental_local_results(value)
        return next((v for v in local if v.device == variable.device), value)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Without a tf.distribute strategy there is nothing to sum (Horovod sums in
        # the step), and Keras's one-replica all-reduce is one IdentityN over every
        # gradient, which TensorFlow places on a single device.
        if not tf.distribute.has_strategy():
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)
