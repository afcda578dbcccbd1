"""SIGTERM and SIGUSR1: the run finishes its step, saves, and exits for a requeue."""

import os
import signal
import subprocess
import sys

import pytest

from alexnet_dist.training.preemption import EXIT_PREEMPTED
from tests.helpers import REPO, run_cli, signal_when

pytestmark = pytest.mark.slow  # a run in a process of its own


def test_sigterm_saves_a_checkpoint_and_exits_for_requeue(tmp_path):
    run_dir = tmp_path / "run"
    args = ["-m", "alexnet_dist.cli.train", "debug=tiny", f"hydra.run.dir={run_dir}",
            "trainer.checkpoint_every_steps=100000", "trainer.log_every_steps=1"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, *args, "trainer.max_steps=100000", "trainer.epochs=100000"],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out = signal_when(proc, " step 3/", signal.SIGTERM)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "SIGTERM received: stopped at step" in out
    stopped = int(out.split("stopped at step ")[1].split()[0])
    assert (run_dir / "checkpoints" / f"ckpt-{stopped}.index").exists()

    again = run_cli([*args, f"trainer.max_steps={stopped + 2}"], timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"ckpt-{stopped}" in again.stdout and "resumed from" in again.stdout
    assert f"finished at step {stopped + 2}" in again.stdout
