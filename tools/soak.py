"""Soak: trains the demo for a while and records the trainer's resident memory.

    .venv/bin/python tools/soak.py [--minutes 10] [--every 30] [--warmup 2] [-- overrides...]

A leak that costs a few MB per epoch does not show in a test; over days it ends
a job. This runs `alexnet-train` (the built-in demo unless overrides say
otherwise) in its own run directory, samples VmRSS from /proc every `--every`
seconds, stops the run after `--minutes` (SIGTERM: it saves and exits as if
preempted), and prints the samples and the growth from the end of the warm-up
(tracing, the first epoch's allocations, the dataset cache) to the last
sample, and the growth of the lowest sample from the first half after the warm-up
to the second. Exit code 1 if that floor grew by 5 % or more.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

LIMIT = 0.05


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=2, help="minutes before the baseline")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for alexnet-train")
    args = parser.parse_args(argv)

    run_dir = tempfile.mkdtemp(prefix="alexnet-soak-")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alexnet_dist.cli.train",
            f"hydra.run.dir={run_dir}",
            *args.overrides,
        ],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    progress = {"line": ""}

    def follow():
        for line in proc.stdout:
            if " step " in line:
                progress["line"] = line.strip()

    threading.Thread(target=follow, daemon=True).start()
    start = time.monotonic()
    samples = []
    print(f"soak: alexnet-train {' '.join(args.overrides)} in {run_dir}", flush=True)
    print(f"{'min':>6} {'RSS MB':>8}  progress", flush=True)
    while proc.poll() is None and time.monotonic() - start < args.minutes * 60:
        time.sleep(args.every)
        mb = rss_mb(proc.pid)
        if mb is None:
            break
        minutes = (time.monotonic() - start) / 60
        samples.append((minutes, mb))
        step = re.search(r"epoch \d+/\d+ step \d+/\d+", progress["line"])
        print(f"{minutes:6.1f} {mb:8.1f}  {step.group(0) if step else '-'}", flush=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)

    after = [mb for minutes, mb in samples if minutes >= args.warmup]
    if len(after) < 2:
        print(f"soak: too few samples after the {args.warmup:g}-minute warm-up", file=sys.stderr)
        return 1
    growth = after[-1] / after[0] - 1
    # A leak raises the floor. The allocator moves the peaks: glibc keeps what each
    # epoch's shuffle buffer freed and hands it back in bursts, a sawtooth of about
    # 150 MB in the demo, so two single samples can land anywhere on it.
    half = len(after) // 2
    low_first, low_last = min(after[:half]), min(after[half:])
    floor = low_last / low_first - 1
    print(
        f"soak: resident memory {after[0]:.1f} MB at {args.warmup:g} min -> {after[-1]:.1f} MB at "
        f"{samples[-1][0]:.1f} min ({growth:+.1%}; peak {max(after):.1f} MB); lowest "
        f"{low_first:.1f} MB in the first half after the warm-up -> {low_last:.1f} MB in the "
        f"second ({floor:+.1%}); limit +{LIMIT:.0%} on the lowest"
    )
    return 0 if floor < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
