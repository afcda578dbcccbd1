"""The train step's images/s on data already in memory: the step alone, without the input.

Runs the real runtime, model, optimizer and train step on random tensors. The
batch is what the input pipeline ships (uint8 pixels, each image's mirror
decision and lighting shift), so the step includes the float work done on the
device. The first two steps (tracing, XLA compilation) are not timed.
"""

import time

import keras
import tensorflow as tf

from alexnet_dist.config import ModelConfig, OptimConfig
from alexnet_dist.data import augment
from alexnet_dist.distribute.placement import build_model
from alexnet_dist.distribute.runtime import Runtime
from alexnet_dist.training.loss_scale import LossScale
from alexnet_dist.training.optimizer import build_optimizer
from alexnet_dist.training.step import make_train_step


def step_rate(
    runtime: Runtime, cfg: ModelConfig, replica_batch: int, steps: int, policy: str, jit: bool
) -> tuple[float, float]:
    """(images/s over all replicas, the last step's mean loss) of `steps` timed steps of
    `cfg`'s network with 1000 classes, `replica_batch` images per replica, under the
    precision `policy`, XLA-compiled with `jit`. Every process of the runtime calls it."""
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        global_batch = replica_batch * runtime.num_replicas
        fp16 = policy == "mixed_float16"
        with runtime.scope():
            model = build_model(cfg, 1000, runtime.placement)
            optimizer = build_optimizer(
                OptimConfig(), model, 0.01 * global_batch / 128, skip_non_finite=fp16
            )
        step = make_train_step(
            model, optimizer, runtime, global_batch, 5e-4, jit,
            loss_scale=LossScale() if fp16 else None, model_input=augment.model_input,
        )  # fmt: skip
        size = cfg.image_size
        pixels = tf.random.uniform((replica_batch, size, size, 3), 0, 256, tf.int32)
        inputs = {
            "pixels": tf.cast(pixels, tf.uint8),
            "mirror": tf.random.uniform((replica_batch,)) < 0.5,
            "lighting": tf.random.normal((replica_batch, 3), stddev=5.0),
        }
        batch = (inputs, tf.random.uniform((replica_batch,), 0, 1000, tf.int32))
        for _ in range(2):
            float(step(batch)["loss_sum"])
        start = time.perf_counter()
        for _ in range(steps):
            sums = step(batch)
        loss = float(sums["loss_sum"]) / global_batch  # waits for the last step
        return steps * global_batch / (time.perf_counter() - start), loss
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
