"""The multi-node sbatch scripts, run with stand-ins for srun and scontrol on one machine.

The stand-ins do what Slurm does for a job step on one node: srun starts
SLURM_NTASKS copies of the command with SLURM_PROCID and the step variables set,
and scontrol expands the node list. Everything else (the scripts, the launchers,
SlurmClusterResolver, horovodrun, training) is the real thing.
"""

import glob
import os
import signal
import subprocess
import sys

import pytest

from alexnet_dist.distribute.launcher import free_ports
from tests.helpers import REPO, free_port_pair, wait_for_port

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

FAKE_SRUN = """#!/usr/bin/env bash
while [[ $1 == -* ]]; do shift; done
n=$SLURM_NTASKS
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_PROCID=$i SLURM_STEP_NUM_TASKS=$n SLURM_STEP_NODELIST=localhost \\
    SLURM_STEP_TASKS_PER_NODE=$n "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
[[ $1 == show && $2 == hostnames ]] && echo localhost
"""


@pytest.fixture
def slurm_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    venv_bin = os.path.dirname(sys.executable)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{venv_bin}:{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SLURM_JOB_ID": "77",
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NODELIST": "localhost",
        "ALEXNET_REPO": REPO,
        "VENV_BIN": venv_bin,
    }


def sbatch(script, env, *overrides):
    return subprocess.run(
        ["bash", os.path.join(REPO, "slurm", script), "debug=tiny", *overrides],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_multiworker_script_finds_the_cluster_through_slurm(tmp_path, slurm_env):
    port = free_ports(1)[0]
    result = sbatch(
        "multiworker.sbatch", {**slurm_env, "SLURM_JOB_NAME": "mw"},
        f"data.cache_dir={tmp_path}/cache", f"distribute.port_base={port}", "trainer.max_steps=3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "(8 per replica x 2 replicas)" in result.stdout
    assert result.stdout.count("finished at step 3") == 1
    run_dir = tmp_path / "runs" / "mw-77"
    ckpts = glob.glob(f"{run_dir}/**/*.index", recursive=True)
    assert sorted(os.path.basename(c) for c in ckpts) == ["best-3.index", "ckpt-3.index"]
    assert (run_dir / "worker-1.log").exists()


def test_horovod_script_runs_one_rank_per_task(tmp_path, slurm_env):
    result = sbatch(
        "horovod.sbatch", {**slurm_env, "SLURM_JOB_NAME": "hvd", "HOROVOD_ARGS": "--gloo"},
        f"data.cache_dir={tmp_path}/cache", "trainer.max_steps=3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert "hosts: localhost:2" in result.stdout
    assert "(8 per replica x 2 replicas)" in result.stdout
    run_dir = tmp_path / "runs" / "hvd-77"
    assert (run_dir / "checkpoints" / "ckpt-3.index").exists()


def test_slurm_cluster_outside_a_job_step_is_a_config_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.train", "debug=tiny", "distribute=multiworker",
         "distribute.cluster=slurm", f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs a Slurm job step" in result.stdout + result.stderr


def test_data_service_script_serves_a_training_job(tmp_path, slurm_env):
    port = free_port_pair()
    env = {**slurm_env, "SLURM_NTASKS": "1", "SERVICE_PORT": str(port)}
    service = subprocess.Popen(
        ["bash", os.path.join(REPO, "slurm", "data_service.sbatch")], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    address_file = tmp_path / "data-service-77.address"
    try:
        wait_for_port(port + 1)  # the worker, started by srun
        assert address_file.read_text().strip() == f"grpc://localhost:{port}"
        result = subprocess.run(
            [sys.executable, "-m", "alexnet_dist.train", "debug=tiny", "trainer.max_steps=3",
             f"data.cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run",
             f"data.service={address_file.read_text().strip()}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "finished at step 3" in result.stdout
    finally:
        os.killpg(service.pid, signal.SIGTERM)  # scancel
        service.communicate(timeout=30)
    assert not address_file.exists()  # the job removes its address when it ends
