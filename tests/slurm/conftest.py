"""A real Slurm for the tests: tools/slurm_cluster.sh starts munged, slurmctld and two slurmd
(node1, node2) on this machine once per session, and every test submits the project's own
sbatch scripts to it with sbatch."""

import dataclasses
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from tests.helpers import REPO, claim_for_this_worker

CLUSTER_SCRIPT = os.path.join(REPO, "tools", "slurm_cluster.sh")
# The scripts ask for GPUs and many CPUs, as on a GPU cluster; on this CPU "cluster"
# (two emulated nodes with this machine's cores) a job asks for none of that.
CPU_JOB = ["--gres=none", "--gpus-per-task=0", "--gpus-per-node=0", "--cpus-per-task=1"]


def _free_port_run(count: int) -> int:
    """A port p such that p .. p + count - 1 are all free."""
    for base in range(16000, 30000, 97):
        ports = range(base, base + count)
        if all(_free(p) for p in ports):
            return base
    raise AssertionError(f"no {count} consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="session")
def slurm():
    """The environment in which Slurm's commands reach the test cluster."""
    claim_for_this_worker("slurm")
    # Not under pytest's own folder (mode 700): munged wants every folder above its socket
    # passable by all.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="alexnet-slurm-test."))
    env = {
        **os.environ,
        "SLURM_TEST_DIR": str(folder),
        "SLURM_TEST_PORT": str(_free_port_run(3)),
    }
    started = subprocess.run(
        ["bash", CLUSTER_SCRIPT, "start"], env=env, capture_output=True, text=True, timeout=600
    )
    assert started.returncode == 0, started.stdout + started.stderr
    yield {
        **env,
        "SLURM_CONF": str(folder / "slurm.conf"),
        "ALEXNET_REPO": REPO,
        "PYTHON": sys.executable,
        "VENV_BIN": os.path.dirname(sys.executable),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # Both emulated nodes are this machine: MPI's TCP between "nodes" over loopback
        # alone. Other tests add and remove interfaces meanwhile (veth pairs, the
        # emulated-node bridges); a rank that had been given the address of one that
        # went away waited minutes for its connection (one CI run: 9.5 min).
        "OMPI_MCA_btl_tcp_if_include": "lo",
        "OMPI_MCA_oob_tcp_if_include": "lo",
    }
    subprocess.run(["bash", CLUSTER_SCRIPT, "stop"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass
class Job:
    id: str
    proc: subprocess.Popen  # `sbatch --wait`: ends when the job has ended for good
    output: str
    env: dict

    def wait(self, timeout: float = 300) -> int:
        """The job's exit code, once it has ended (after any requeue)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            subprocess.run(["scancel", self.id], env=self.env, timeout=30)
            self.proc.kill()
            raise
        return self.proc.returncode

    def log(self) -> str:
        with open(self.output) as f:
            return f.read()

    def wait_for(self, marker: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.output) and marker in self.log():
                return
            time.sleep(0.3)
        raise AssertionError(f"job {self.id}: {marker!r} not in its output after {timeout} s")

    def signal_batch(self, name: str) -> None:
        """What Slurm does before the time limit (--signal=B:USR1@120): signal the batch shell."""
        subprocess.run(
            ["scancel", f"--signal={name}", "--batch", self.id], env=self.env, check=True
        )


_SUBMITTED: list[Job] = []


@pytest.fixture(autouse=True)
def _cancel_leftover_jobs():
    """Cancels a test's jobs that are still there when it ends (it failed or timed out), so
    that they do not hold the two nodes from the next test's jobs."""
    yield
    while _SUBMITTED:
        job = _SUBMITTED.pop()
        if job.proc.poll() is None:
            subprocess.run(["scancel", job.id], env=job.env, capture_output=True, timeout=30)
            try:
                job.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                job.proc.kill()


def submit(env, cwd, script: str, name: str, *sbatch_args: str, overrides=()) -> Job:
    """Submits slurm/<script> as job `name` from `cwd` (its submit directory), with --wait."""
    proc = subprocess.Popen(
        ["sbatch", "--wait", "--parsable", f"--job-name={name}", *CPU_JOB, *sbatch_args,
         os.path.join(REPO, "slurm", script), *overrides],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    job_id = proc.stdout.readline().strip().split(";")[0]
    assert job_id.isdigit(), proc.stderr.read() if proc.poll() is not None else job_id
    job = Job(job_id, proc, os.path.join(cwd, f"{name}-{job_id}.out"), env)
    _SUBMITTED.append(job)
    return job
