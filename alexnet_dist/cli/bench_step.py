"""`alexnet-bench-step`: train-step throughput on synthetic data, per precision and XLA setting.

    alexnet-bench-step [--variant paper] [--batch 64] [--steps 10]
    alexnet-bench-step --devices-per-replica 2 --xla off     # towers on 2 devices
    alexnet-bench-step --variant owt --owt-hybrid --devices-per-replica 4 --xla off
    horovodrun -np 2 alexnet-bench-step --backend horovod --variant owt --owt-hybrid \
        --ranks-per-replica 2 --xla off                     # the hybrid over 2 ranks
    horovodrun -np 2 alexnet-bench-step --backend horovod ...
    TF_CONFIG=... alexnet-bench-step --backend multiworker   # one per worker

Runs the real runtime, model, optimizer and train step on random tensors already
in memory, so the figure is the step alone, without the input pipeline
(training/throughput.py). `--batch` is per replica; the figure is images/s over
all replicas (rank 0 prints it).
With --json, each figure is a JSON line that also holds the last step's loss.
Without GPUs, `--devices-per-replica K` gives each process K logical CPUs
that stand in for them. tools/bench_towers.py runs every layout. With
`--owt-hybrid` the one-tower network runs as the 2014 hybrid on the K devices
(distribute/owt_hybrid.py); `--batch` is then per device, as in data parallelism.
"""

import argparse
import itertools
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from alexnet_dist.config import DistributeConfig, ModelConfig  # noqa: E402
from alexnet_dist.distribute.backends import create_runtime  # noqa: E402
from alexnet_dist.models.layers import DEFAULT_IMAGE_SIZE  # noqa: E402
from alexnet_dist.training.throughput import step_rate  # noqa: E402


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
    placement = runtime.placement
    # A batch of --batch images per replica; the hybrid splits its replica's batch over its
    # K devices (--batch each). Over ranks, the loop's replicas are the ranks already.
    replica_batch = args.batch * (placement.spans if args.owt_hybrid and placement.devices else 1)
    model = ModelConfig(
        variant=args.variant, image_size=args.image_size or DEFAULT_IMAGE_SIZE[args.variant],
        width=args.width,
    )  # fmt: skip
    if runtime.is_chief and not args.json:
        where = f"towers on {placement.devices or 'one device'}"
        per = "replica"
        if args.owt_hybrid:
            where, per = f"the 2014 hybrid on {placement.devices}", "device"
        count = f"{runtime.num_replicas} replica(s)"
        if placement.rank_group is not None:  # the loop's replicas are the ranks
            where = f"the 2014 hybrid over {placement.spans} ranks per replica"
            per, count = "rank", f"{runtime.num_replicas} ranks"
        print(
            f"{args.variant} AlexNet, width {args.width}, batch {args.batch} per {per} x "
            f"{count}, {where}, {args.steps} steps"
        )
        print(f"{'precision':<16} {'XLA':<5} {'images/s':>9}")
    for policy, jit in itertools.product(args.policies, xla):
        rate, loss = step_rate(runtime, model, replica_batch, args.steps, policy, jit)
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
