"""The project's sbatch scripts on a real Slurm (slurmctld and two slurmd on this machine).

Each test submits a script with `sbatch --wait` as a user would (with the CPU
overrides a CPU partition needs, conftest.CPU_JOB) and checks what the job left:
its output file, its run directory, its checkpoints.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

from alexnet_dist.distribute import cluster
from alexnet_dist.distribute.launcher import free_ports
from tests.helpers import REPO, free_port_pair, wait_for_port
from tests.slurm.conftest import submit

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),  # one test cluster: every Slurm test on one worker
]


def tiny(*extra):
    return ["debug=tiny", "trainer.log_every_steps=1", *extra]


def checkpoints(run_dir) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(f"{run_dir}/**/*.index", recursive=True))


def test_train_script_trains_and_when_preempted_is_requeued_and_resumes(slurm, tmp_path):
    job = submit(
        slurm, tmp_path, "train.sbatch", "pre",
        overrides=tiny("trainer.max_steps=14", "trainer.checkpoint_every_steps=100"),
    )  # fmt: skip
    job.wait_for("step 2/14")
    job.signal_batch("USR1")
    assert job.wait() == 0, job.log()[-3000:]
    log = job.log()
    # Trained to the end in a run directory named after the job, with one output file.
    run_dir = tmp_path / "runs" / f"pre-{job.id}"
    assert "finished at step 14" in log
    assert "ckpt-14.index" in checkpoints(run_dir)
    stopped = re.search(r"SIGUSR1 received: stopped at step (\d+) after saving", log)
    assert stopped, log[-3000:]
    step = int(stopped.group(1))
    # Both legs in one file: the first leg's progress and its requeue, then the resume.
    assert f"preempted (exit code 75): requeueing job {job.id}" in log
    assert f"resumed from {tmp_path}/runs/pre-{job.id}/checkpoints/ckpt-{step}" in log
    assert (
        log.index("requeueing job") < log.index("resumed from") < log.index("finished at step 14")
    )
    assert log.count(f"run directory: {tmp_path}/runs/pre-{job.id}") == 2


def _steps_stopped_at(log: str) -> list[int]:
    return [int(s) for s in re.findall(r"received: stopped at step (\d+)", log)]


def test_multiworker_two_tasks_on_one_node_preempted_stop_together_and_resume(slurm, tmp_path):
    port = free_ports(1)[0]
    job = submit(
        slurm, tmp_path, "multiworker.sbatch", "mw", "--nodes=1", "--ntasks-per-node=2",
        overrides=tiny("trainer.max_steps=14", f"distribute.port_base={port}"),
    )  # fmt: skip
    job.wait_for("step 2/14")
    job.signal_batch("USR1")
    assert job.wait() == 0, job.log()[-3000:]
    log = job.log()
    assert "(8 per replica x 2 replicas)" in log
    # srun passed USR1 to both workers: both stopped after the same step (each says
    # so on the job's console, the other worker in its log too); then the job came
    # back and resumed from the chief's checkpoint of that step.
    run_dir = tmp_path / "runs" / f"mw-{job.id}"
    stopped = _steps_stopped_at(log)
    other = _steps_stopped_at((run_dir / "worker-1.log").read_text())
    assert len(stopped) == 2 and len(set(stopped)) == 1 and other == stopped[:1], (stopped, other)
    assert f"requeueing job {job.id}" in log
    assert f"resumed from {run_dir}/checkpoints/ckpt-{stopped[0]}" in log
    assert log.count("finished at step 14") == 1


def test_multiworker_one_task_on_each_of_two_nodes(slurm, tmp_path):
    # Both emulated nodes are this machine: node 2's worker takes another port.
    port = free_ports(1)[0]
    job = submit(
        slurm, tmp_path, "multiworker.sbatch", "mw2", "--nodes=2", "--ntasks-per-node=1",
        overrides=tiny("trainer.max_steps=3", f"distribute.port_base={port}",
                       "distribute.node_port_offset=1"),
    )  # fmt: skip
    assert job.wait() == 0, job.log()[-3000:]
    log = job.log()
    assert f"'worker': ['node1:{port}', 'node2:{port + 1}']" in log
    assert "(8 per replica x 2 replicas)" in log and log.count("finished at step 3") == 1
    assert checkpoints(tmp_path / "runs" / f"mw2-{job.id}") == ["best-3.index", "ckpt-3.index"]


def test_a_worker_whose_peer_does_not_resolve_fails_within_the_timeout(slurm, tmp_path):
    port = free_ports(1)[0]
    job = submit(
        slurm, tmp_path, "multiworker.sbatch", "lost", "--nodes=1", "--ntasks-per-node=1",
        overrides=tiny("distribute.cluster=hosts", "distribute.task_index=0",
                       f"distribute.hosts=[node1:{port},node9.invalid:{port}]",
                       "distribute.timeout_s=10"),
    )  # fmt: skip
    assert job.wait(timeout=120) != 0
    log = job.log()
    assert "did not finish within distribute.timeout_s=10 seconds" in log, log[-3000:]
    assert f"cannot reach node9.invalid:{port} (the host name 'node9.invalid' does not" in log
    assert "requeueing" not in log  # a failure, not a preemption


def test_horovod_ranks_started_by_srun_on_two_nodes_preempted_stop_together_and_resume(
    slurm, tmp_path
):
    job = submit(
        slurm, tmp_path, "horovod.sbatch", "hvd", "--nodes=2", "--ntasks-per-node=1",
        overrides=tiny("trainer.max_steps=14"),
    )  # fmt: skip
    job.wait_for("step 2/14")
    job.signal_batch("USR1")
    assert job.wait() == 0, job.log()[-3000:]
    log = job.log()
    assert "ranks: 2 on node[1-2]" in log
    assert "(8 per replica x 2 replicas)" in log  # two Horovod ranks, through MPI and PMIx
    run_dir = tmp_path / "runs" / f"hvd-{job.id}"
    stopped = _steps_stopped_at(log)
    assert len(stopped) == 2 and len(set(stopped)) == 1, stopped
    assert _steps_stopped_at((run_dir / "worker-1.log").read_text()) == stopped[:1]
    assert f"requeueing job {job.id}" in log
    assert f"resumed from {run_dir}/checkpoints/ckpt-{stopped[0]}" in log
    assert log.count("finished at step 14") == 1


def test_data_service_job_serves_a_training_job(slurm, tmp_path):
    port = free_port_pair()
    service = submit(
        slurm, tmp_path, "data_service.sbatch", "data", "--nodes=1",
        "--export", f"ALL,SERVICE_PORT={port}",
    )  # fmt: skip
    address_file = tmp_path / f"data-service-{service.id}.address"
    try:
        # The job may wait for its node while the previous test's job completes: time the
        # worker's start from the job's, not from the submission.
        service.wait_for("tf.data service: grpc://", timeout=300)
        try:
            wait_for_port(port + 1)  # its worker, started by srun on node1
        except AssertionError as e:
            raise AssertionError(f"{e}; the job's output:\n{service.log()[-3000:]}") from None
        address = address_file.read_text().strip()
        assert address == f"grpc://node1:{port}"
        result = subprocess.run(
            [sys.executable, "-m", "alexnet_dist.cli.train", *tiny("trainer.max_steps=3"),
             f"hydra.run.dir={tmp_path}/run", f"data.service={address}"],
            cwd=REPO, env=slurm, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "finished at step 3" in result.stdout
    finally:
        subprocess.run(["scancel", service.id], env=slurm, timeout=30)
        service.proc.wait(60)
    assert not address_file.exists()  # the job removes its address when it ends


@pytest.mark.security
def test_multiworker_takes_the_ports_of_its_job_by_default(slurm, tmp_path):
    # No distribute.port_base: the workers listen on the range the job's id gives them
    # (distribute/cluster.job_port_base), seen while they train.
    job = submit(
        slurm, tmp_path, "multiworker.sbatch", "ports", "--nodes=1", "--ntasks-per-node=2",
        overrides=tiny("trainer.epochs=30"),
    )  # fmt: skip
    job.wait_for("step 2/300")
    first = cluster.job_port_base({"SLURM_JOB_ID": job.id})
    wait_for_port(first, timeout=30)
    wait_for_port(first + 1, timeout=30)
    assert job.wait() == 0, job.log()[-3000:]
