"""A worker that stops answering, mid-training and at start-up.

The bound is distribute.peer_timeout_s (after start-up) and distribute.timeout_s
(joining); alexnet_dist/distribute/peers.py and watchdog.py say how each is kept.
"""

import os
import re
import signal
import sys
import time

import pytest

from alexnet_dist.distribute.peers import EXIT_PEER_LOST
from tests.helpers import descendants, finish, start_cli, trainer

pytestmark = [pytest.mark.faults, pytest.mark.multiprocess, pytest.mark.slow]

TIMEOUT = 5  # distribute.peer_timeout_s in these tests (default 60)
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")
FOREVER = ["trainer.max_steps=100000", "trainer.epochs=100000"]


def _start(command, run_dir, *overrides):
    return start_cli(
        [*command, "debug=tiny", f"hydra.run.dir={run_dir}",
         f"distribute.peer_timeout_s={TIMEOUT}", *FOREVER, *overrides]
    )  # fmt: skip


def _stop_when_training(proc, variable: str, value: str) -> float:
    """SIGSTOPs that worker once the job trains; returns the time it was stopped."""
    for line in proc.stdout:
        if re.search(r" step \d+/", line):
            break
    os.kill(trainer(proc.pid, variable, value), signal.SIGSTOP)
    return time.monotonic()


@pytest.mark.fault_hung_peer
def test_a_stopped_multiworker_worker_ends_the_job_naming_it(tmp_path):
    # Fault: worker 1 of 2 stops answering (SIGSTOP: as a hung process or a dead node's
    # host looks to its peers). Behaviour: the coordination service on worker 0 misses its
    # heartbeats; worker 0 exits with 69 naming worker 1, and the launcher stops worker 1
    # and says it was stopped. Detection: within 2 x distribute.peer_timeout_s. Lost: the
    # steps since the newest checkpoint.
    launcher = [sys.executable, "-m", "alexnet_dist.cli.multiworker", "-n", "2",
                "--run-dir", str(tmp_path / "run")]  # fmt: skip
    proc = _start(launcher, tmp_path / "run")
    stopped = _stop_when_training(proc, "TF_CONFIG", "1")
    code, out, err = finish(proc, timeout=120)
    waited = time.monotonic() - stopped
    assert code == EXIT_PEER_LOST, out[-2000:] + err[-3000:]
    assert (
        f"alexnet-train: error: worker 1 stopped answering: no heartbeat for "
        f"distribute.peer_timeout_s={TIMEOUT} seconds" in err
    ), err[-3000:]
    assert re.search(
        rf"launcher: worker 0 exited with {EXIT_PEER_LOST} \(a peer stopped answering\); "
        r"worker 1 \(pid \d+\) is stopped",
        err,
    ), err[-3000:]
    assert waited < 2 * TIMEOUT + 30  # the bound, plus the launcher's and TensorFlow's exit
    assert not descendants(proc.pid)


@pytest.mark.fault_hung_peer
def test_a_stopped_horovod_rank_ends_the_job(tmp_path):
    # Fault: rank 1 of 2 stops answering. Behaviour: rank 0's next all-reduce fails after
    # Gloo's timeout (set from distribute.peer_timeout_s); it exits with 69 and horovodrun
    # ends the job, naming the rank that exited first. Detection: peer_timeout_s plus
    # horovodrun's shutdown. Gloo does not say which rank was silent; the message says so.
    command = [HOROVODRUN, "--gloo", "-np", "2", "-H", "localhost:2", sys.executable,
               "-m", "alexnet_dist.cli.train", "distribute=horovod"]  # fmt: skip
    proc = _start(command, tmp_path / "run")
    stopped = _stop_when_training(proc, "HOROVOD_RANK", "1")
    code, out, err = finish(proc, timeout=120)
    waited = time.monotonic() - stopped
    assert code != 0
    assert f"Process 0 exit with status code {EXIT_PEER_LOST}" in out, out[-3000:]
    assert (
        "alexnet-train: error: a Horovod collective failed: another rank exited, or did not "
        f"answer within distribute.peer_timeout_s={TIMEOUT} seconds (Gloo's timeout)" in err
    ), err[-3000:]
    assert waited < 2 * TIMEOUT + 30
    assert not descendants(proc.pid)


@pytest.mark.fault_start_signal
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_waiting_for_its_peers_at_start_up_honours_sigterm_and_ctrl_c(tmp_path, signum):
    # Fault: the job is cancelled (scancel, preemption: SIGTERM) or interrupted (Ctrl-C)
    # while a worker waits for a peer that never comes. Before, TensorFlow's own thread
    # swallowed SIGTERM and the wait ignored SIGINT: only SIGKILL ended it. Behaviour: the
    # worker ends at once, naming the signal. Lost: nothing (no step has run).
    proc = start_cli(
        [sys.executable, "-m", "alexnet_dist.cli.train", "debug=tiny", "distribute=multiworker",
         "distribute.cluster=hosts", "distribute.hosts=[localhost:23456,nosuchhost.invalid:2222]",
         "distribute.task_index=0", "distribute.timeout_s=600", f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"]
    )  # fmt: skip
    for line in proc.stdout:  # the config is printed just before the strategy starts
        if "distribute:" in line:
            break
    time.sleep(5)  # inside the strategy's wait
    proc.send_signal(signum)
    sent = time.monotonic()
    code, _, err = finish(proc, timeout=60)
    assert code != 0
    assert time.monotonic() - sent < 10
    name = signal.Signals(signum).name
    assert f"alexnet-train: {name} received before worker 0 joining 2 workers had finished" in err
