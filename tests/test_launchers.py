"""The shell entry points pin the run directory, so a second start resumes the first run."""

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

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
