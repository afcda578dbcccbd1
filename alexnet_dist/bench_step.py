"""`alexnet-bench-step`: train-step throughput on synthetic data, per precision and XLA setting.

    alexnet-bench-step [--variant paper] [--batch 64] [--steps 10]
    alexnet-bench-step --devices-per-replica 2 --xla off     # towers on 2 devices
    alexnet-bench-step --variant owt --owt-hybrid --devices-per-replica 4 --xla off
    horovodrun -np 2 alexnet-bench-step --backend horovod --variant owt --owt-hybrid \
        --ranks-per-replica 2 --xla off                     # the hybrid over 2 ranks
    horovodrun -np 2 alexnet-bench-step --backend horovod ...
    TF_CONFIG=... alexnet-bench-step --backend multiworker   # one per worker

Runs the real runtime, model, optimizer and train step (alexnet_dist.training.step)
on random tensors already in memory, so the figure is the step alone, without
the input pipeline. The batch is what the pipeline ships (uint8 pixels, each
image's mirror decision and lighting shift), so the step includes the float work done on the device.
`--batch` is per replica; the figure is images/s over all replicas (rank 0
prints it). The first two steps (tracing, XLA compilation) are not timed.
With --json, each figure is a JSON line that also holds the last step's loss.
Without GPUs, `--devices-per-replica K` gives each process K logical CPUs
that stand in for them. tools/bench_towers.py runs every layout. With
`--owt-hybrid` the one-tower network runs as the 2014 hybrid on the K devices
(models/owt_hybrid.py); `--batch` is then per device, as in data parallelism.
"""

import argparse
import itertools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_dist.config import DistributeConfig, OptimConfig  # noqa: E402
from alexnet_dist.data import augment  # noqa: E402
from alexnet_dist.distribute import create_runtime  # noqa: E402
from alexnet_dist.models import build_alexnet  # noqa: E402
from alexnet_dist.models.alexnet import DEFAULT_IMAGE_SIZE  # noqa: E402
from alexnet_dist.training.loss_scale import LossScale  # noqa: E402
from alexnet_dist.training.optimizer import build_optimizer  # noqa: E402
from alexnet_dist.training.step import make_train_step  # noqa: E402


def images_per_second(args, runtime, policy: str, jit_compile: bool) -> tuple[float, float]:
    """(images/s over all replicas, the last step's mean loss)."""
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        # The hybrid splits a replica's batch over its devices: --batch images each.
        replica_batch = args.batch * (args.devices_per_replica if args.owt_hybrid else 1)
        global_batch = replica_batch * runtime.num_replicas
        fp16 = policy == "mixed_float16"
        with runtime.scope():
            model = build_alexnet(
                args.variant, 1000, args.image_size, args.width,
                tower_devices=runtime.tower_devices, rank_group=runtime.rank_group,
            )  # fmt: skip
            optimizer = build_optimizer(
                OptimConfig(), model, 0.01 * global_batch / 128, skip_non_finite=fp16
            )
        step = make_train_step(
            model, optimizer, runtime, global_batch, 5e-4, jit_compile,
            loss_scale=LossScale() if fp16 else None, model_input=augment.model_input,
        )  # fmt: skip
        size = args.image_size or DEFAULT_IMAGE_SIZE[args.variant]
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
        for _ in range(args.steps):
            sums = step(batch)
        loss = float(sums["loss_sum"]) / global_batch  # waits for the last step
        return args.steps * global_batch / (time.perf_counter() - start), loss
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="alexnet-bench-step", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64, help="per replica")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--policies", nargs="+", default=["float32", "mixed_bfloat16", "mixed_float16"]
    )
    parser.add_argument("--xla", choices=["off", "on", "both"], default="both")
    parser.add_argument("--backend", choices=["single", "multiworker", "horovod"], default="single")
    parser.add_argument("--devices-per-replica", type=int, default=1)
    parser.add_argument(
        "--owt-hybrid", action="store_true", help="--variant owt on K devices, the 2014 way"
    )
    parser.add_argument("--ranks-per-replica", type=int, default=1, help="--owt-hybrid's K ranks")
    parser.add_argument("--json", action="store_true", help="one JSON line per figure")
    args = parser.parse_args(argv)
    k = max(args.devices_per_replica, args.ranks_per_replica)
    if args.owt_hybrid and (args.variant != "owt" or k < 2):
        parser.error(
            "--owt-hybrid runs --variant owt on --devices-per-replica K >= 2 or, with "
            "--backend horovod, --ranks-per-replica K"
        )
    per_replica = args.devices_per_replica
    stand_ins = (
        per_replica if per_replica > 1 and not tf.config.list_physical_devices("GPU") else None
    )
    runtime = create_runtime(
        DistributeConfig(
            backend=args.backend,
            devices_per_replica=per_replica,
            owt_hybrid=args.owt_hybrid,
            ranks_per_replica=args.ranks_per_replica,
            logical_cpus=stand_ins,
        )
    )
    xla = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    if runtime.is_chief and not args.json:
        where = f"towers on {runtime.tower_devices or 'one device'}"
        per = "replica"
        if args.owt_hybrid:
            where, per = f"the 2014 hybrid on {runtime.tower_devices}", "device"
        count = f"{runtime.num_replicas} replica(s)"
        if runtime.rank_group is not None:  # the loop's replicas are the ranks
            where = f"the 2014 hybrid over {runtime.rank_group.size} ranks per replica"
            per, count = "rank", f"{runtime.num_replicas} ranks"
        print(
            f"{args.variant} AlexNet, width {args.width}, batch {args.batch} per {per} x "
            f"{count}, {where}, {args.steps} steps"
        )
        print(f"{'precision':<16} {'XLA':<5} {'images/s':>9}")
    for policy, jit in itertools.product(args.policies, xla):
        rate, loss = images_per_second(args, runtime, policy, jit)
        if not runtime.is_chief:
            continue
        if args.json:
            figure = {"policy": policy, "xla": jit, "images_per_sec": rate, "loss": loss}
            print(json.dumps(figure), flush=True)
        else:
            print(f"{policy:<16} {'on' if jit else 'off':<5} {rate:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
