"""The train step under XLA and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.config import DistributeConfig, OptimConfig
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.models import build_alexnet
from alexnet_dist.training.loss_scale import LossScale
from alexnet_dist.training.optimizer import build_optimizer
from alexnet_dist.training.step import make_train_step, predict_log_probs


def one_step(jit_compile, policy="float32", steps=2):
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        runtime = create_runtime(DistributeConfig())
        model = build_alexnet("paper", 5, 67, width=0.125, dropout=0.0, init="he")
        optimizer = build_optimizer(OptimConfig(), model, 0.05 * 8 / 128)
        step = make_train_step(model, optimizer, runtime, 8, 5e-4, jit_compile=jit_compile)
        rng = np.random.default_rng(1)
        for _ in range(steps):
            images = rng.normal(0, 1, (8, 67, 67, 3)).astype(np.float32)
            labels = rng.integers(0, 5, 8).astype(np.int32)
            sums = step((tf.constant(images), tf.constant(labels)))
        return model, {k: float(v) for k, v in sums.items()}
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_xla_step_equals_the_plain_step():
    plain, plain_sums = one_step(jit_compile=False)
    xla, xla_sums = one_step(jit_compile=True)
    assert xla_sums["loss_sum"] == pytest.approx(plain_sums["loss_sum"], rel=1e-4)
    for a, b in zip(xla.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_mixed_bfloat16_computes_in_bf16_with_float32_weights_and_logits(jit_compile):
    model, sums = one_step(jit_compile, policy="mixed_bfloat16")
    assert np.isfinite(sums["loss_sum"]) and sums["count"] == 8
    conv = model.get_layer("conv2_a")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert model.get_layer("lrn1_a").compute_dtype == "bfloat16"  # computes in float32 inside
    assert model.get_layer("fc8").compute_dtype == "float32"
    keras.mixed_precision.set_dtype_policy("float32")
    logits = model(np.zeros((2, 67, 67, 3), np.float32))
    assert logits.dtype == tf.float32


def fp16_setup(runtime, initial_scale, growth_steps=2000, jit_compile=False):
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    with runtime.scope():
        model = build_alexnet("paper", 5, 67, width=0.125, dropout=0.0, init="he")
        optimizer = build_optimizer(OptimConfig(), model, 0.05, skip_non_finite=True)
        loss_scale = LossScale(initial_scale, growth_steps)
    step = make_train_step(
        model, optimizer, runtime, 8, 5e-4, jit_compile=jit_compile, loss_scale=loss_scale
    )
    return model, optimizer, loss_scale, step


def state_of(model, optimizer):
    return [v.numpy().copy() for v in model.trainable_variables + optimizer.variables[2:]]


def batch(rng, poison=False):
    images = rng.normal(0, 1, (8, 67, 67, 3)).astype(np.float32)
    if poison:
        images[4:] = np.inf  # the second half: replica 1 of 2
    return tf.constant(images), tf.constant(rng.integers(0, 5, 8).astype(np.int32))


def test_fp16_loss_scaling_skips_overflowing_steps_and_lowers_the_scale():
    try:
        runtime = create_runtime(DistributeConfig())
        # 2**40 overflows float16 in the backward pass; the scale must come down.
        model, optimizer, loss_scale, step = fp16_setup(runtime, 2.0**40, growth_steps=2)
        assert model.get_layer("conv2_a").compute_dtype == "float16"
        rng = np.random.default_rng(0)
        initial = state_of(model, optimizer)
        scales, skipped = [], []
        for _ in range(30):
            sums = step(batch(rng))
            scales.append(float(loss_scale.scale.numpy()))
            skipped.append(float(sums["skipped"]))
            if not skipped[-1]:
                break
            for a, b in zip(initial, state_of(model, optimizer), strict=True):
                np.testing.assert_array_equal(a, b)  # a skipped step changes nothing
        assert skipped[0] == 1.0 and skipped[-1] == 0.0, skipped
        assert scales == [2.0 ** (40 - i) for i in range(1, len(scales))] + [scales[-2]]
        assert any(np.any(a != b) for a, b in zip(initial, state_of(model, optimizer), strict=True))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_fp16_inf_gradients_on_one_replica_skip_the_step_on_all_replicas(mirrored_runtime):
    runtime = mirrored_runtime
    try:
        model, optimizer, loss_scale, step = fp16_setup(runtime, 1024.0)
        rng = np.random.default_rng(0)

        def distributed(global_batch):
            images, labels = global_batch  # each replica gets its half, in order
            ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
            return next(iter(runtime.distribute_dataset(lambda ctx: ds)))

        initial = state_of(model, optimizer)
        sums = step(distributed(batch(rng, poison=True)))
        assert float(sums["skipped"]) == 1.0
        assert float(loss_scale.scale.numpy()) == 512.0
        for a, b in zip(initial, state_of(model, optimizer), strict=True):
            np.testing.assert_array_equal(a, b)
        for variable in model.trainable_variables:  # both replicas' copies unchanged
            first, second = variable.value.values
            np.testing.assert_array_equal(first.numpy(), second.numpy())
        sums = step(distributed(batch(rng)))
        assert float(sums["skipped"]) == 0.0 and np.isfinite(float(sums["loss_sum"]))
        assert any(np.any(a != b) for a, b in zip(initial, state_of(model, optimizer), strict=True))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_multi_crop_prediction_averages_the_softmax_over_crops():
    keras.utils.set_random_seed(0)
    model = build_alexnet("owt", 5, 67, width=0.125, dropout=0.0, init="he")
    crops = tf.random.stateless_normal([2, 10, 67, 67, 3], [0, 1])
    got = predict_log_probs(model, crops).numpy()
    for i in range(2):
        probs = tf.nn.softmax(model(crops[i], training=False)).numpy()
        np.testing.assert_allclose(np.exp(got[i]), probs.mean(axis=0), rtol=1e-5)


def test_fp16_step_under_xla_applies_finite_steps():
    try:
        runtime = create_runtime(DistributeConfig())
        model, optimizer, loss_scale, step = fp16_setup(runtime, 1024.0, jit_compile=True)
        initial = state_of(model, optimizer)
        sums = step(batch(np.random.default_rng(0)))
        assert float(sums["skipped"]) == 0.0 and np.isfinite(float(sums["loss_sum"]))
        assert any(np.any(a != b) for a, b in zip(initial, state_of(model, optimizer), strict=True))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_each_replica_draws_its_own_dropout_masks(mirrored_runtime):
    runtime = mirrored_runtime
    with runtime.scope():
        keras.utils.set_random_seed(0)
        model = build_alexnet("paper", 5, 67, width=0.125, dropout=0.5, init="he")
    seeds = [v for v in model.non_trainable_variables if "seed_generator" in v.path]
    images = tf.random.stateless_normal([2, 67, 67, 3], [0, 0])

    @tf.function
    def forward():
        return runtime.strategy.run(lambda: model(images, training=True))

    def per_replica():
        return [t.numpy() for t in forward().values]

    same = per_replica()
    np.testing.assert_array_equal(same[0], same[1])  # Keras alone: one mask for all
    before = [[c.numpy() for c in v.value.values] for v in seeds]
    runtime.offset_by_replica(seeds)
    for v, (first, second) in zip(seeds, before, strict=True):
        now = [c.numpy() for c in v.value.values]
        np.testing.assert_array_equal(now[0], first)  # replica 0 keeps the checkpointed state
        np.testing.assert_array_equal(now[1], second + [1, 0])
    logits = per_replica()
    assert np.abs(logits[0] - logits[1]).max() > 1e-4
