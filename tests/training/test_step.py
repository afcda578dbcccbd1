"""The train step under XLA and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_dist.config import DistributeConfig, OptimConfig
from alexnet_dist.distribute import create_runtime
from alexnet_dist.models import build_alexnet
from alexnet_dist.training.optimizer import build_optimizer
from alexnet_dist.training.step import make_train_step


def one_step(jit_compile, policy="float32", steps=2):
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        runtime = create_runtime(DistributeConfig())
        model = build_alexnet("paper", 5, 67, width=0.125, dropout=0.0, init="he")
        optimizer = build_optimizer(OptimConfig(lr=0.05), model, 8, 10)
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
