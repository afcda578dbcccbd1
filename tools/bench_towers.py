"""The paper's split at scale: train-step images/s of each layout this machine can run.

    .venv/bin/python tools/bench_towers.py [--batch 64] [--steps 10] [--width 1.0]

Layouts, each through alexnet-bench-step on synthetic data (the step alone):
one device; one replica with its towers on two devices; Horovod with one device
per rank (plain data parallelism); Horovod with two devices per rank (the
paper's split inside every replica, data parallelism across them). On a GPU
machine the devices are GPUs: Horovod runs on every GPU, as G ranks x 1 or
G/2 ranks x 2. Without GPUs, logical CPUs stand in for them, all sharing the
same cores: expect overhead, not speed-up. `--batch` is per replica.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

BENCH_STEP = ["-m", "alexnet_dist.cli.bench_step"]
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")


def layouts(gpus: int) -> list[tuple[str, int, int]]:
    """(name, Horovod ranks or 0 for one process without Horovod, devices per replica)."""
    if gpus == 1:
        return [("one device", 0, 1)]
    devices = gpus or 2  # without GPUs: two stand-in devices
    out = [("one device", 0, 1), ("towers on two devices", 0, 2)]
    out.append((f"horovod {devices} ranks x 1 device", devices, 1))
    if devices >= 4 or not gpus:
        ranks = devices // 2 if gpus else 2  # CPU: each rank splits its CPU in two
        out.append((f"horovod {ranks} ranks x 2 devices", ranks, 2))
    return out


def run(args, ranks: int, per_replica: int) -> float:
    bench = [
        sys.executable, *BENCH_STEP, "--json", "--xla", "off", "--policies", args.policy,
        "--variant", "paper", "--width", str(args.width), "--batch", str(args.batch),
        "--steps", str(args.steps), "--devices-per-replica", str(per_replica),
    ]  # fmt: skip
    if ranks:
        hosts = f"localhost:{ranks}"
        bench = [
            HOROVODRUN,
            "--gloo",
            "-np",
            str(ranks),
            "-H",
            hosts,
            *bench,
            "--backend",
            "horovod",
        ]
    result = subprocess.run(bench, capture_output=True, text=True, timeout=args.timeout)
    if result.returncode:
        raise SystemExit(f"{' '.join(bench)} failed:\n{result.stderr[-3000:]}")
    # horovodrun prefixes each rank's lines ("[0]<stdout>:"); only rank 0 prints a figure.
    lines = [line[line.index("{") :] for line in result.stdout.splitlines() if "{" in line]
    return json.loads(lines[-1])["images_per_sec"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64, help="per replica")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--policy", default="float32")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per layout")
    args = parser.parse_args(argv)
    gpus = len(tf.config.list_physical_devices("GPU"))
    kind = f"{gpus} GPUs" if gpus else "no GPU: logical CPUs stand in, sharing the cores"
    print(
        f"paper AlexNet, width {args.width}, {args.policy}, batch {args.batch} per replica, "
        f"{args.steps} steps ({kind})"
    )
    print(f"{'layout':<32} {'devices':>7} {'global batch':>12} {'images/s':>9} {'per device':>10}")
    base = None
    for name, ranks, per_replica in layouts(gpus):
        rate = run(args, ranks, per_replica)
        devices = max(ranks, 1) * per_replica
        base = base or rate
        print(
            f"{name:<32} {devices:>7} {args.batch * max(ranks, 1):>12} {rate:>9.1f} "
            f"{rate / devices:>10.1f}   ({rate / base:.2f}x one device)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
