"""LAMB (training/lamb.py): Keras's Lamb arithmetic with the decay decoupled and excluded
variables, skipped non-finite steps, and a layer split into shards taken as one layer. The
hybrid's LAMB over devices and ranks against one device is in tests/training/test_lars.py."""

import keras
import numpy as np
import tensorflow as tf

from alexnet_dist.training.lamb import Lamb
from tests.training.test_lars import _gradients, _variables


def test_lamb_decays_weights_but_not_biases_and_skips_non_finite_gradients():
    values, variables = _variables()
    lamb = Lamb(0.01, weight_decay=0.1, exclude="bias", skip_non_finite=True)
    plain = keras.optimizers.Lamb(0.01)  # the same without decay, on copies
    copies = [keras.Variable(v.numpy(), name=v.path) for v in variables]
    lamb.build(variables)
    plain.build(copies)
    for step in range(1, 4):  # the bias correction changes with the step
        grads = _gradients(step)
        lamb.apply_gradients([(tf.constant(grads[v.path], tf.float32), v) for v in variables])
        for v, c in zip(variables, copies, strict=True):
            # Keras's decoupled decay first, w <- w - lr * wd * w, then LAMB's update.
            c.assign(c.numpy() * (1.0 - (0.0 if v.path.endswith("bias") else 0.01 * 0.1)))
        plain.apply_gradients([(tf.constant(grads[c.path], tf.float32), c) for c in copies])
        for v, c in zip(variables, copies, strict=True):
            np.testing.assert_allclose(v.numpy(), c.numpy(), rtol=1e-5, atol=1e-7)
    kept = [v.numpy().copy() for v in variables]
    lamb.apply_gradients([(tf.fill(v.shape, np.inf), v) for v in variables])
    for v, k in zip(variables, kept, strict=True):
        np.testing.assert_array_equal(v.numpy(), k)


def test_a_layer_split_into_shards_takes_its_norms_over_all_of_them():
    # One (6, 4) kernel, and the same kernel as two (6, 2) shards of one layer: the
    # shards move as the whole does, and not as two layers of their own would.
    rng = np.random.default_rng(1)
    whole = rng.normal(0, 0.3, (6, 4)).astype(np.float32)
    grads = [rng.normal(0, 1.0, (6, 4)).astype(np.float32) for _ in range(3)]
    one = keras.Variable(whole, name="kernel")
    shards = [keras.Variable(whole[:, :2], name="kernel_0"),
              keras.Variable(whole[:, 2:], name="kernel_1")]  # fmt: skip
    own = [keras.Variable(whole[:, :2], name="kernel_0"),
           keras.Variable(whole[:, 2:], name="kernel_1")]  # fmt: skip
    reference, apart = (Lamb(0.01, weight_decay=0.1, exclude="") for _ in range(2))
    # As build_optimizer passes the model's layer_shards().
    split = Lamb(0.01, weight_decay=0.1, exclude="", layers=[shards])
    reference.build([one])
    split.build(shards)
    apart.build(own)
    for g in grads:
        halves = [tf.constant(g[:, :2]), tf.constant(g[:, 2:])]
        reference.apply_gradients([(tf.constant(g), one)])
        split.apply_gradients(list(zip(halves, shards, strict=True)))
        apart.apply_gradients(list(zip(halves, own, strict=True)))
    joined = np.concatenate([s.numpy() for s in shards], axis=1)
    np.testing.assert_allclose(joined, one.numpy(), rtol=1e-5, atol=1e-7)
    separate = np.concatenate([s.numpy() for s in own], axis=1)
    assert np.abs(separate - one.numpy()).max() > 1e-5
