"""Train-step throughput of one replica on synthetic data: images/s per precision and XLA setting.

    .venv/bin/python tools/bench_step.py [--variant paper] [--batch 64] [--steps 10]

Runs the real model, optimizer and train step (alexnet_dist.training.step) on
random tensors already in memory, so the figure is the step alone, without the
input pipeline. The first two steps (tracing, XLA compilation) are not timed.
"""

import argparse
import itertools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_dist.config import DistributeConfig, OptimConfig  # noqa: E402
from alexnet_dist.distribute import create_runtime  # noqa: E402
from alexnet_dist.models import build_alexnet  # noqa: E402
from alexnet_dist.models.alexnet import DEFAULT_IMAGE_SIZE  # noqa: E402
from alexnet_dist.training.loss_scale import LossScale  # noqa: E402
from alexnet_dist.training.optimizer import build_optimizer  # noqa: E402
from alexnet_dist.training.step import make_train_step  # noqa: E402


def images_per_second(args, policy: str, jit_compile: bool) -> float:
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        runtime = create_runtime(DistributeConfig())
        model = build_alexnet(args.variant, 1000, args.image_size, args.width)
        fp16 = policy == "mixed_float16"
        optimizer = build_optimizer(
            OptimConfig(), model, 0.01 * args.batch / 128, skip_non_finite=fp16
        )
        step = make_train_step(
            model, optimizer, runtime, args.batch, 5e-4, jit_compile,
            loss_scale=LossScale() if fp16 else None,
        )  # fmt: skip
        size = args.image_size or DEFAULT_IMAGE_SIZE[args.variant]
        batch = (
            tf.random.normal((args.batch, size, size, 3)),
            tf.random.uniform((args.batch,), 0, 1000, tf.int32),
        )
        for _ in range(2):
            float(step(batch)["loss_sum"])
        start = time.perf_counter()
        for _ in range(args.steps):
            sums = step(batch)
        float(sums["loss_sum"])  # wait for the last step
        return args.steps * args.batch / (time.perf_counter() - start)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--policies", nargs="+", default=["float32", "mixed_bfloat16", "mixed_float16"]
    )
    args = parser.parse_args(argv)
    print(f"{args.variant} AlexNet, width {args.width}, batch {args.batch}, {args.steps} steps")
    print(f"{'precision':<16} {'XLA':<5} {'images/s':>9}")
    for policy, jit in itertools.product(args.policies, (False, True)):
        rate = images_per_second(args, policy, jit)
        print(f"{policy:<16} {'on' if jit else 'off':<5} {rate:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
