"""Fault injection: each test names the fault, what the run does, how long detection takes,
and what is lost. Run one kind alone with its marker, e.g. `pytest -m fault_disk_full`,
or all with `pytest -m faults`."""

import contextlib
import os
import subprocess
import sys

import tensorflow as tf

from tests.helpers import start_cli


@contextlib.contextmanager
def tmpfs(path, size_kb: int, *options: str):
    """A tmpfs of `size_kb` at `path` (a small disk that fills, or a read-only one): needs root,
    as CI has; unmounted afterwards."""
    os.makedirs(path, exist_ok=True)
    opts = ",".join([f"size={size_kb}k", *options])
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                             capture_output=True, text=True)  # fmt: skip
    assert mounted.returncode == 0, f"mounting a tmpfs needs root: {mounted.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def train(run_dir, *overrides) -> subprocess.Popen:
    """alexnet-train on debug=tiny (the session's data unless `overrides` name other), progress
    on stdout every step, in its own process group."""
    return start_cli(
        [sys.executable, "-m", "alexnet_dist.cli.train", "debug=tiny",
         f"hydra.run.dir={run_dir}", "trainer.log_every_steps=1", *overrides]
    )  # fmt: skip


def assert_readable(checkpoint: str) -> None:
    """Every tensor of the checkpoint reads back (a damaged file fails here)."""
    reader = tf.train.load_checkpoint(checkpoint)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
