"""The train step's images/s on data in memory (alexnet-bench-step's figures, tests/cli/)."""

import math

import keras

from alexnet_dist.config import DistributeConfig, ModelConfig
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.training.throughput import step_rate


def test_a_rate_and_a_finite_loss_and_the_precision_restored():
    runtime = create_runtime(DistributeConfig())
    cfg = ModelConfig(variant="paper", image_size=67, width=0.125)
    rate, loss = step_rate(runtime, cfg, replica_batch=4, steps=2, policy="mixed_bfloat16",
                           jit=False)  # fmt: skip
    assert rate > 0 and math.isfinite(loss)
    assert keras.mixed_precision.dtype_policy().name == "float32"
