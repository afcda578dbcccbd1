"""The shell entry points (the sbatch scripts are tested on a real Slurm in tests/slurm/)."""

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, TINY_RUN

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


@pytest.mark.security
def test_a_run_directory_is_taken_as_it_is(tmp_path):
    """launch/train.sh passes the run directory through ALEXNET_RUN_DIR: a comma (which
    an override would turn into a sweep) and quotes (a parse error) stay part of the path;
    a ${...}, which Hydra would resolve where it copies the path, is refused by name."""
    interpolated = tmp_path / "run ${oc.env:HOME}"
    result = subprocess.run(["bash", os.path.join(REPO, "launch", "train.sh"),
                             str(interpolated), *TINY_RUN], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 1 and "may not contain '${'" in result.stderr
    assert str(interpolated) in result.stderr and os.listdir(tmp_path) == []
    run_dir = tmp_path / "a,b 'q\" c"
    result = subprocess.run(
        ["bash", os.path.join(REPO, "launch", "train.sh"), str(run_dir), *TINY_RUN,
         "trainer.max_steps=1", "trainer.epochs=1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints").is_dir()
    assert os.listdir(tmp_path) == [run_dir.name]


@pytest.mark.security
def test_numbers_are_checked_before_any_arithmetic(tmp_path):
    """bash evaluates a variable in $((...)) as an expression, and an expression can run
    commands: the data-service scripts refuse anything but a number first."""
    ran = tmp_path / "ran"
    hostile = f"x[$(touch {ran})]"
    script = os.path.join(REPO, "launch", "data_service.sh")
    for flag in ("-p", "-n"):
        result = subprocess.run(["bash", script, flag, hostile], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert f"{flag} takes a" in result.stderr and hostile in result.stderr
    sbatch = os.path.join(REPO, "slurm", "data_service.sbatch")
    result = subprocess.run(["bash", sbatch], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SERVICE_PORT": hostile})  # fmt: skip
    assert result.returncode == 2 and "SERVICE_PORT takes a port" in result.stderr
    elastic = os.path.join(REPO, "slurm", "elastic.sbatch")
    job = {**os.environ, "SLURM_JOB_ID": "1", "SLURM_NTASKS": "2", "RUNS_DIR": str(tmp_path)}
    for variable, message in (("MIN_NP", "MIN_NP takes a number"),
                              ("BLACKLIST_COOLDOWN", "BLACKLIST_COOLDOWN takes")):  # fmt: skip
        result = subprocess.run(["bash", elastic], capture_output=True, text=True, timeout=60,
                                env={**job, variable: hostile})  # fmt: skip
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not ran.exists()
