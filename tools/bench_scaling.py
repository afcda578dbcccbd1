"""Data-parallel scaling on this machine: images/s of 1 and 2 workers for each backend.

    .venv/bin/python tools/bench_scaling.py [--batch 64] [--steps 60] [--backends ...]

Each worker is pinned to its own core (taskset) and keeps the same per-worker
batch, so 2 workers do twice the work per step; perfect scaling doubles the
images/s. The figure is the median of the chief's per-step images/s over the
last two thirds of the run: the first third is tracing and warm-up, and an
epoch's first step (a new dataset filling its shuffle buffer) is not what a
step costs; on the demo's short epochs it would land in one run and not in
the other. It trains the demo network
(model=paper_small) on the built-in shapes dataset through the real entry point.

Next to each 2-worker figure: the step time it implies, and the gradient
all-reduce alone as the run measured it at start (alexnet_dist.distribute.
allreduce_timing). On a worker with one core, the collective's CPU work cannot
overlap the step's, so step time ~ the 1-worker step + the all-reduce.
`independent` runs the same processes without any communication (each a
1-worker run on its own core): the most the machine allows.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.distribute import cluster  # noqa: E402
from alexnet_dist.distribute.launcher import free_ports  # noqa: E402

RATE = re.compile(r"step (\d+)/\d+ .* ([\d.]+) img/s")
ALL_REDUCE = re.compile(r"gradient all-reduce over \d+ replicas: [\d.]+ MB in ([\d.]+) ms")


def overrides(args, workers: int, run_dir: str) -> list[str]:
    return [
        f"data.global_batch_size={args.batch * workers}",
        f"data.eval_batch_size={50 * workers}",
        f"trainer.max_steps={args.steps}",
        "trainer.log_every_steps=1",
        f"trainer.checkpoint_every_steps={10 * args.steps}",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]


def commands(backend: str, workers: int, args, run_dir: str) -> list[tuple[list[str], dict]]:
    """The processes to start, each with its extra environment."""
    entry = [sys.executable, "-m", "alexnet_dist.cli.train"]
    if backend == "independent":  # no communication: 1-worker runs side by side
        return [
            (["taskset", "-c", str(i), *entry, *overrides(args, 1, f"{run_dir}/{i}")], {})
            for i in range(workers)
        ]
    train = [*entry, *overrides(args, workers, run_dir)]
    if backend == "mirrored":
        cores = ",".join(str(i) for i in range(workers))
        cmd = ["taskset", "-c", cores, *train, "distribute=mirrored"]
        return [(cmd + [f"distribute.logical_cpus={workers}"], {})]
    if backend == "multiworker":
        addresses = [f"localhost:{p}" for p in free_ports(workers)]
        return [
            (["taskset", "-c", str(i), *train, "distribute=multiworker"],
             {"TF_CONFIG": json.dumps(cluster.tf_config(addresses, i))})
            for i in range(workers)
        ]  # fmt: skip
    if backend == "horovod":
        horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
        pinned = 'exec taskset -c "$HOROVOD_LOCAL_RANK" "$@"'
        return [
            ([horovodrun, "--gloo", "-np", str(workers), "-H", f"localhost:{workers}",
              "bash", "-c", pinned, "pin", *train, "distribute=horovod"], {})
        ]  # fmt: skip
    raise ValueError(f"unknown backend {backend!r}")


def measure(backend: str, workers: int, args) -> tuple[float, float | None]:
    """(images/s over all workers, the all-reduce's milliseconds or None)."""
    with tempfile.TemporaryDirectory() as run_dir:
        procs = [
            subprocess.Popen(
                cmd,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for cmd, env in commands(backend, workers, args, run_dir)
        ]
        outs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"{backend} with {workers} workers failed:\n{outs[0][-3000:]}")
    # Independent processes each report their own rate; a distributed run, the chief its total.
    total = 0.0
    for out in outs if backend == "independent" else outs[:1]:
        rates = [float(r) for step, r in RATE.findall(out) if int(step) > args.steps // 3]
        if not rates:
            raise RuntimeError(f"no images/s reported by {backend} with {workers} workers")
        total += statistics.median(rates)
    all_reduce = ALL_REDUCE.search(outs[0])
    return total, float(all_reduce.group(1)) if all_reduce else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="per-worker batch")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--backends", nargs="+", default=["independent", "mirrored", "multiworker", "horovod"]
    )
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every run")
    args = parser.parse_args(argv)
    print(f"per-worker batch {args.batch}, {args.steps} steps, one core per worker")
    print(
        f"{'backend':<12} {'1 worker':>10} {'2 workers':>10} {'speed-up':>9} {'efficiency':>10}"
        f" {'step ms':>8} {'all-reduce ms':>14}"
    )
    for backend in args.backends:
        (one, _), (two, all_reduce) = (measure(backend, n, args) for n in (1, 2))
        step_ms = 1e3 * 2 * args.batch / two  # a step of the 2-worker run
        print(
            f"{backend:<12} {one:>10.1f} {two:>10.1f} {two / one:>8.2f}x {two / one / 2:>10.0%}"
            f" {step_ms:>8.0f} {'-' if all_reduce is None else f'{all_reduce:.0f}':>14}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
