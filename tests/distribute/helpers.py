"""A replica's model and train step at the tests' small size, in any placement, batches for
it, and the numerics driver's run in this process (shared by the distribution tests)."""

import numpy as np
import tensorflow as tf

from alexnet_dist.config import DistributeConfig, ModelConfig, OptimConfig
from alexnet_dist.distribute.backends import create_runtime
from alexnet_dist.distribute.placement import ONE_DEVICE, Placement, build_model
from alexnet_dist.training.optimizer import build_optimizer
from alexnet_dist.training.step import make_train_step
from tests.helpers import STEPS

IMAGE, CLASSES, BATCH = 67, 5, 8
DEVICES = ["/cpu:0", "/cpu:1"]  # the two logical CPUs of tests/conftest.py


def network(variant: str, placement: Placement = ONE_DEVICE):
    """The small network (width 1/8, 67 pixels, no dropout, He init) placed so."""
    cfg = ModelConfig(variant=variant, image_size=IMAGE, width=0.125, dropout=0.0, init="he")
    return build_model(cfg, CLASSES, placement)


def training(variant: str, devices=None, model_input=None, weight_decay=5e-4):
    """(model, optimizer, train step) of one replica, its model over `devices` (None: on one):
    the paper's towers, or the one-tower network as the 2014 hybrid."""
    hybrid = variant == "owt" and bool(devices)
    if devices:
        runtime = create_runtime(
            DistributeConfig(devices_per_replica=2, owt_hybrid=hybrid, logical_cpus=2)
        )
        assert runtime.placement.devices == DEVICES
    else:
        runtime = create_runtime(DistributeConfig())
    model = network(variant, Placement(devices, owt_hybrid=hybrid) if devices else ONE_DEVICE)
    optimizer = build_optimizer(OptimConfig(), model, 0.01)
    step = make_train_step(model, optimizer, runtime, BATCH, weight_decay, model_input=model_input)
    return model, optimizer, step


def batch(seed=0, uint8=False):
    """A training batch of BATCH images: float32 network input, or (`uint8`) what the input
    pipeline ships (uint8 pixels, mirror flags and lighting shifts)."""
    rng = np.random.default_rng(seed)
    labels = tf.constant(rng.integers(0, CLASSES, BATCH), tf.int32)
    if not uint8:
        return tf.constant(rng.normal(0, 1, (BATCH, IMAGE, IMAGE, 3)).astype(np.float32)), labels
    inputs = {
        "pixels": tf.constant(rng.integers(0, 256, (BATCH, IMAGE, IMAGE, 3)).astype(np.uint8)),
        "mirror": tf.constant(rng.random(BATCH) < 0.5),
        "lighting": tf.constant(rng.normal(0, 5, (BATCH, 3)).astype(np.float32)),
    }
    return inputs, labels


def numerics_run(
    backend, per_replica, steps=STEPS, towers=False, variant="paper", optim="sgd", batch_norm=None
):
    """The numerics driver's weights after `steps` steps, run in this process (the
    one-process layouts; the logical CPUs of tests/conftest.py stand in for devices)."""
    from alexnet_dist.doctor import numerics

    return numerics.run(numerics.config(backend, towers), steps, per_replica, variant=variant,
                        optim=optim, batch_norm=batch_norm)  # fmt: skip
