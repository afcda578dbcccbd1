"""slurm/elastic.sbatch on a real Slurm: horovodrun's elastic mode in the batch script, each
rank a step of the job on its own node (srun; no ssh), one rank per node of two.

A rank that dies, and a rank that hangs, leave the job training with the other; a job
that is preempted (USR1 before the time limit) stops every rank after the same step, is
requeued and resumes.
"""

import os
import re
import signal
import time

import pytest

from tests.helpers import alive, environ
from tests.slurm.conftest import submit

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),  # one test cluster: every Slurm test on one worker
]

TWO_NODES = ["--nodes=2", "--ntasks-per-node=1"]
# Both emulated nodes are this machine: the ranks talk over loopback.
ELASTIC_ENV = {"NETWORK_INTERFACE": "lo"}


def _overrides(*extra):
    return ["debug=tiny", "trainer.log_every_steps=1", "distribute.commit_every_steps=3", *extra]


def _rank(job_id: str, rank: str) -> int:
    """The training process of the job's rank `rank`, wherever Slurm started it."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                if "alexnet_dist.cli.train" not in f.read().split("\0"):
                    continue
            env = environ(int(pid))
        except OSError:
            continue
        if env.get("SLURM_JOB_ID") == job_id and env.get("HOROVOD_RANK") == rank:
            return int(pid)
    raise AssertionError(f"no rank {rank} of job {job_id} runs")


def _command_lines() -> list[bytes]:
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                lines.append(f.read())
        except OSError:
            continue
    return lines


def _lost_rank(job, victim: int, sig: int, timeout: float) -> int:
    """Sends `sig` to the victim; returns the commit the other rank went on from."""
    os.kill(victim, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"2 -> 1 ranks, this is rank 0; going on from the commit at step (\d+)",
                          job.log())  # fmt: skip
        if found:
            return int(found.group(1))
        time.sleep(0.3)
    raise AssertionError(f"job {job.id}: rank 0 did not go on alone:\n{job.log()[-4000:]}")


def test_a_rank_that_dies_leaves_the_other_training_and_a_preempted_job_resumes(slurm, tmp_path):
    job = submit(
        {**slurm, **ELASTIC_ENV}, tmp_path, "elastic.sbatch", "el", *TWO_NODES,
        overrides=_overrides("trainer.epochs=6"),
    )  # fmt: skip
    job.wait_for("step 5/60", timeout=180)
    victim = _rank(job.id, "1")
    env = environ(victim)
    assert env["SLURM_STEP_ID"] != "batch" and env["HOROVOD_HOSTNAME"] in ("node1", "node2")
    # srun passed the rendezvous key in the environment: no command line shows it.
    key = env["HOROVOD_GLOO_RENDEZVOUS_KEY"].encode()
    assert len(key) >= 32 and not [p for p in _command_lines() if key in p]
    commit = _lost_rank(job, victim, signal.SIGKILL, timeout=60)
    job.wait_for(f"step {commit + 3}/60")
    job.signal_batch("USR1")  # as Slurm before the time limit
    assert job.wait(timeout=300) == 0, job.log()[-4000:]
    log = job.log()
    stopped = re.search(r"SIGUSR1 received: stopped at step (\d+) after saving", log)
    assert stopped, log[-4000:]
    assert f"requeueing job {job.id}" in log
    run_dir = tmp_path / "runs" / f"el-{job.id}"
    assert f"resumed from {run_dir}/checkpoints/ckpt-{stopped.group(1)}" in log
    # The requeued job starts both ranks again, on both nodes.
    resumed = log[log.index("resumed from") :]
    assert "global batch 16 (8 per replica x 2 replicas)" in resumed
    assert log.count("finished at step 60") == 1


def test_a_rank_that_hangs_is_stopped_and_the_other_finishes(slurm, tmp_path):
    job = submit(
        {**slurm, **ELASTIC_ENV}, tmp_path, "elastic.sbatch", "hang", *TWO_NODES,
        overrides=_overrides("trainer.epochs=6", "distribute.peer_timeout_s=10"),
    )  # fmt: skip
    job.wait_for("step 5/60", timeout=180)
    victim = _rank(job.id, "1")
    # The all-reduce fails after 10 s, the driver waits 10 s more at the rendezvous.
    commit = _lost_rank(job, victim, signal.SIGSTOP, timeout=90)
    log = job.log()
    assert re.search(r"worker node\d\[0\] did not come to the rendezvous within 10 s", log)
    deadline = time.monotonic() + 60
    while alive(victim) and time.monotonic() < deadline:  # Slurm ends its step
        time.sleep(0.3)
    assert not alive(victim), "the hung rank's step was not ended"
    assert job.wait(timeout=300) == 0, job.log()[-4000:]
    log = job.log()
    after = log[log.index("2 -> 1 ranks") :]
    assert re.search(rf"\[0\]<stdout>:.* step {commit + 1}/60 ", after)
    assert "finished at step 60" in after
