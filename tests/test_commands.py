"""The shell entry points (the sbatch scripts are tested on a real Slurm in tests/slurm/)."""

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


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
