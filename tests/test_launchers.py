"""The shell entry points pin the run directory, so a second start resumes the first run."""

import glob
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers import REPO, signal_when

pytestmark = pytest.mark.slow


def test_slurm_script_trains_in_a_job_named_directory_and_resumes(tmp_path):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "alexnet",
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "ALEXNET_REPO": REPO,
    }
    args = ["bash", os.path.join(REPO, "slurm", "train.sbatch"), "debug=tiny",
            f"data.cache_dir={tmp_path}/cache"]  # fmt: skip
    first = subprocess.run(
        [*args, "trainer.max_steps=3"], env=env, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "alexnet-4242"
    assert f"run directory: {run_dir}" in first.stdout
    assert (run_dir / "checkpoints" / "ckpt-3.index").exists()

    # A requeued job starts the same script again: it resumes at step 3.
    again = subprocess.run(
        [*args, "trainer.max_steps=5"], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout and "ckpt-3" in again.stdout
    assert (run_dir / "checkpoints" / "ckpt-5.index").exists()


def test_launch_script_needs_a_run_directory():
    result = subprocess.run(
        ["bash", os.path.join(REPO, "launch", "train.sh")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_console_scripts_are_installed(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    convert = subprocess.run(
        [os.path.join(bin_dir, "alexnet-convert"), "--help"], capture_output=True, text=True
    )
    assert convert.returncode == 0 and "--skip-bad" in convert.stdout
    # From another directory: the configs come with the package, not from the cwd.
    train = subprocess.run(
        [os.path.join(bin_dir, "alexnet-train"), "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert train.returncode == 0, train.stderr
    assert "name: shapes_demo" in train.stdout


def test_slurm_script_requeues_after_usr1(tmp_path):
    """Slurm's time-limit warning (USR1 to the batch shell) saves, stops and requeues."""
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path}/scontrol.calls\n')
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SLURM_JOB_ID": "4343",
        "SLURM_JOB_NAME": "alexnet",
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "ALEXNET_REPO": REPO,
    }
    proc = subprocess.Popen(
        ["bash", os.path.join(REPO, "slurm", "train.sbatch"), "debug=tiny",
         f"data.cache_dir={tmp_path}/cache", "trainer.max_steps=100000", "trainer.epochs=100000",
         "trainer.log_every_steps=1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out = signal_when(proc, " step 2/", signal.SIGUSR1)
    assert proc.returncode == 75, out[-3000:]
    assert "SIGUSR1 received: stopped at step" in out
    assert (tmp_path / "scontrol.calls").read_text().split() == ["requeue", "4343"]
    assert glob.glob(f"{tmp_path}/runs/alexnet-4343/checkpoints/ckpt-*.index")
