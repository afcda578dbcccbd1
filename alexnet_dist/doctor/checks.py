"""The checks `alexnet-doctor` runs on a machine's devices before a long job, each in its own
process with a time limit, and the table they make (cli/doctor.py is the command)."""

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys

import tensorflow as tf

from alexnet_dist.data import shapes
from alexnet_dist.doctor import numerics

TOLERANCE = 1e-5  # relative difference per weight tensor, as the tests require
STEPS, PER_REPLICA = 3, 4


@dataclasses.dataclass
class Result:
    check: str
    devices: str
    status: str  # "pass", "FAIL" or "skip"
    figure: str


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big the benchmarks are: the real network, or a tiny one for a smoke test."""

    width: float
    image_size: int
    step_batch: int
    step_steps: int
    input_batch: int
    input_steps: int
    shapes_per_class: int


FULL = Sizes(1.0, 227, 64, 10, 128, 40, 100)
QUICK = Sizes(0.125, 67, 8, 3, 32, 8, 12)


class Doctor:
    def __init__(self, args: argparse.Namespace, workdir: str):
        self.args = args
        self.workdir = workdir
        self.sizes = QUICK if args.quick else FULL
        self.gpus = len(tf.config.list_physical_devices("GPU"))
        self.kind = "GPU" if self.gpus else "CPU"
        self.references: dict[int, list] = {}  # global batch -> one replica's weights

    # -- processes -----------------------------------------------------------------------

    def run(self, cmd: list[str], env: dict | None = None) -> tuple[bool, str]:
        """(exited 0, its output) of a process bounded by --timeout."""
        try:
            done = subprocess.run(
                cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                timeout=self.args.timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False, f"no answer within --timeout={self.args.timeout:g} s"
        out = done.stdout + done.stderr
        if done.returncode:
            lines = [line for line in out.splitlines() if line.strip()]
            return False, f"exit code {done.returncode}: {lines[-1] if lines else ''}"
        return True, done.stdout

    def weights(self, backend: str, per_replica: int, *options: str, launcher=()) -> list:
        out = os.path.join(self.workdir, f"{backend}-{per_replica}-{'-'.join(options)}.npz")
        cmd = [*launcher, sys.executable, "-m", "alexnet_dist.cli.numerics"]
        ok, message = self.run([*cmd, backend, str(STEPS), str(per_replica), out, *options])
        if not ok:
            raise RuntimeError(message)
        return numerics.load(out)

    def compare(self, name: str, devices: str, replicas: int, run) -> Result:
        """Runs `run()` (the weights of `replicas` replicas with batch PER_REPLICA each)
        and compares them with one replica's weights at the same global batch."""
        try:
            got = run()
            global_batch = replicas * PER_REPLICA
            if global_batch not in self.references:
                self.references[global_batch] = self.weights("single", global_batch)
            worst = max(numerics.relative_differences(got, self.references[global_batch]))
        except (RuntimeError, ValueError) as e:
            return Result(name, devices, "FAIL", str(e))
        status = "pass" if worst < TOLERANCE else "FAIL"
        return Result(name, devices, status, f"max relative difference {worst:.1e}")

    # -- checks --------------------------------------------------------------------------

    def mirrored(self) -> Result:
        name = "mirrored on all devices = one device"
        if self.gpus == 1:
            return Result(name, "1 x GPU", "skip", "needs two GPUs")
        count = self.gpus or 2
        devices = f"{count} x {self.kind}" + ("" if self.gpus else " (logical)")
        run = lambda: self.weights("mirrored", PER_REPLICA)  # noqa: E731
        return self.compare(name, devices, count, run)

    def towers(self) -> Result:
        name = "towers on two devices = one device"
        if self.gpus == 1:
            return Result(name, "1 x GPU", "skip", "needs two GPUs")
        devices = f"2 x {self.kind}" + ("" if self.gpus else " (logical)")
        run = lambda: self.weights("single", 2 * PER_REPLICA, "towers")  # noqa: E731
        return self.compare(name, devices, 2, run)

    def horovod(self) -> Result:
        ranks = self.gpus or 2
        transport = "NCCL" if self.gpus else "Gloo"
        name = f"horovod {ranks} ranks = one device"
        horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable))
        if importlib.util.find_spec("horovod") is None or horovodrun is None:
            return Result(name, "-", "skip", "Horovod is not installed (make horovod)")
        if self.gpus == 1:
            return Result(name, "1 x GPU", "skip", "needs two GPUs")
        launcher = [horovodrun, "--gloo", "-np", str(ranks), "-H", f"localhost:{ranks}"]
        run = lambda: self.weights("horovod", PER_REPLICA, launcher=launcher)  # noqa: E731
        return self.compare(name, f"{ranks} ranks x {self.kind} ({transport})", ranks, run)

    def bench_step(self, policy: str, xla: bool) -> tuple[bool, str, dict]:
        s = self.sizes
        cmd = [
            sys.executable, "-m", "alexnet_dist.cli.bench_step", "--json", "--policies", policy,
            "--xla", "on" if xla else "off", "--width", str(s.width),
            "--image-size", str(s.image_size), "--batch", str(s.step_batch),
            "--steps", str(s.step_steps),
        ]  # fmt: skip
        ok, out = self.run(cmd)
        return ok, out, json.loads(out.strip().splitlines()[-1]) if ok else {}

    def mixed_precision_xla(self) -> Result:
        policy = "mixed_float16" if self.gpus else "mixed_bfloat16"
        name = f"{policy} step with XLA is finite"
        ok, out, figure = self.bench_step(policy, xla=True)
        if not ok:
            return Result(name, f"1 x {self.kind}", "FAIL", out)
        loss = figure["loss"]
        status = "pass" if math.isfinite(loss) else "FAIL"
        return Result(name, f"1 x {self.kind}", status, f"loss {loss:.3f}")

    def step_rate(self) -> tuple[Result, float]:
        """The train step in float32, XLA as training chooses it (on for GPUs)."""
        s = self.sizes
        name = f"train step, batch {s.step_batch}"
        ok, out, figure = self.bench_step("float32", xla=bool(self.gpus))
        if not ok:
            return Result(name, f"1 x {self.kind}", "FAIL", out), 0.0
        rate = figure["images_per_sec"]
        what = f"{rate:,.1f} images/s (paper AlexNet, width {s.width:g}, float32)"
        return Result(name, f"1 x {self.kind}", "pass", what), rate

    def input_rate(self) -> tuple[Result, float]:
        s = self.sizes
        records = self.args.records
        if records is None:
            spec = shapes.ShapesSpec(256, s.shapes_per_class, 2)
            records = shapes.prepare(os.path.join(self.workdir, "shapes"), spec)
        name = "input pipeline, batch " + str(s.input_batch)
        cmd = [
            sys.executable, "-m", "alexnet_dist.cli.bench_input", records,
            "--batch-size", str(s.input_batch), "--steps", str(s.input_steps),
            "--warmup", "2", "--shuffle-buffer", "1000",
        ]  # fmt: skip
        if self.args.quick:
            cmd += ["--image-size", str(s.image_size)]
        ok, out = self.run(cmd)
        cores = len(os.sched_getaffinity(0))
        if not ok:
            return Result(name, f"{cores} cores", "FAIL", out), 0.0
        rate = float(re.search(r"^images/s: ([\d.]+)", out, re.M).group(1))
        what = f"{rate:,.1f} images/s ({rate / cores:,.1f} per core)"
        return Result(name, f"{cores} cores", "pass", what), rate


def verdict(input_rate: float, step_rate: float, kind: str) -> str:
    if not input_rate or not step_rate:
        return ""
    if input_rate >= step_rate:
        return (
            f"The input pipeline keeps up with one {kind}'s step "
            f"({input_rate / step_rate:.1f}x its images/s)."
        )
    return (
        f"Input-bound: one {kind}'s step takes {step_rate:,.0f} images/s, the pipeline gives "
        f"{input_rate:,.0f} with these cores (alexnet-bench-input --target says how many "
        "cores would keep up)."
    )


def table(results: list[Result]) -> str:
    header = Result("check", "devices", "result", "figure")
    rows = [header, *results]
    widths = [max(len(getattr(r, f.name)) for r in rows) for f in dataclasses.fields(Result)]
    lines = []
    for r in rows:
        cells = [getattr(r, f.name) for f in dataclasses.fields(Result)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)
