"""Elastic Horovod: a rank dies or hangs mid-run, the survivor goes on alone, the host
comes back.

The real horovodrun in elastic mode (Gloo) on localhost, with launch/discover_hosts.sh
as the discovery script. "localhost" and "127.0.0.1" are two hosts to Horovod, one
slot each, so that one of them can leave and come back.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import (
    HOROVODRUN,
    REPO,
    alive,
    checkpoint_weights,
    environ,
    relative_difference,
    trainer,
)

pytestmark = [pytest.mark.faults, pytest.mark.fault_elastic, pytest.mark.multiprocess,
              pytest.mark.slow]  # fmt: skip

EPOCHS = 10  # 10 steps each: the host comes back at about step 30 here
# A checkpoint at each commit, all of them kept: the two segments below start from them.
TINY = ["debug=tiny", "model.dropout=0", f"trainer.epochs={EPOCHS}", "trainer.keep_checkpoints=100",
        "trainer.checkpoint_every_steps=3", "trainer.log_every_steps=1"]  # fmt: skip


def _wait_for(log, pattern: str, timeout: float = 180) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text())
        if match:
            return match
        time.sleep(0.2)
    raise AssertionError(
        f"{pattern!r} not in the log within {timeout} s:\n{log.read_text()[-4000:]}"
    )


# The towers on two devices of each rank (the paper's split, here two logical CPUs): the
# state is both towers' variables, committed and broadcast like one tower's.
TOWERS = ["distribute.devices_per_replica=2", "distribute.logical_cpus=2"]


@pytest.mark.parametrize("placement", [[], TOWERS], ids=["one_device", "towers"])
def test_training_goes_on_when_a_rank_dies_and_takes_it_back_when_its_host_returns(
    tmp_path, placement
):
    # Fault: rank 1 of 2 is SIGKILLed mid-epoch (a node lost) and its host leaves the
    # discovery list. Behaviour: rank 0's next all-reduce fails at once (the socket
    # closes); it rolls back to the last commit (distribute.commit_every_steps=3) and goes
    # on alone with the whole global batch. When the host is listed again, Horovod starts
    # a rank there; it joins at rank 0's next commit and takes rank 0's state, and the two
    # finish the run. Lost: the steps since the last commit, trained again.
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost:1\n127.0.0.1:1\n")
    log = tmp_path / "elastic.log"
    total = 10 * EPOCHS
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [HOROVODRUN, "--gloo", "-np", "2", "--min-np", "1", "--max-np", "2",
             "--host-discovery-script", os.path.join(REPO, "launch", "discover_hosts.sh"),
             "--blacklist-cooldown-range", "1", "2",
             sys.executable, "-m", "alexnet_dist.cli.train", "distribute=horovod",
             "distribute.elastic=true", "distribute.commit_every_steps=3", *TINY, *placement,
             f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "ALEXNET_HOSTS_FILE": str(hosts)},
        )  # fmt: skip
    try:
        _wait_for(log, r"step 5/")
        # Which host gets rank 0 is Horovod's choice; the one that leaves is rank 1's.
        victim = trainer(proc.pid, "HOROVOD_RANK", "1")
        lost_host = environ(victim)["HOROVOD_HOSTNAME"]
        assert lost_host in ("localhost", "127.0.0.1"), lost_host
        survivor = "127.0.0.1" if lost_host == "localhost" else "localhost"
        hosts.write_text(f"{survivor}:1\n")
        os.kill(victim, signal.SIGKILL)
        lost = _wait_for(
            log,
            r"a collective failed: a rank exited or stopped answering; 2 -> 1 ranks, this is "
            r"rank 0; going on from the commit at step (\d+)",
        )
        commit = int(lost.group(1))
        _wait_for(log, rf"step {commit + 6}/")  # alone for a while
        hosts.write_text("localhost:1\n127.0.0.1:1\n")
        joined = _wait_for(log, r"ranks were added; 1 -> 2 ranks.* at step (\d+)")
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert commit % 3 == 0 and commit > 0
    if placement:  # both ranks, and the survivor alone, kept the towers on two devices
        assert text.count("towers: a on /cpu:0, b on /cpu:1") >= 2
    after_loss = text[text.index("2 -> 1 ranks") :]
    # The survivor trains the steps after the commit again, on the whole global batch.
    assert re.search(rf"\[0\]<stdout>:.* step {commit + 1}/{total} ", after_loss)
    assert "global batch 16 (16 per replica x 1 replicas)" in after_loss
    after_join = text[text.index("1 -> 2 ranks") :]
    assert "global batch 16 (8 per replica x 2 replicas)" in after_join
    assert f"finished at step {total}:" in after_join

    # Every batch, in the epochs of the failure and of the return included, was trained on
    # once and in order. Each segment is compared with one process that resumes from the
    # elastic run's own checkpoint before it and trains the same steps:
    # - the rollback: from the commit to 6 steps later, one rank alone. The same
    #   arithmetic as one process: the weights are equal.
    # - the return: from the commit where the ranks stopped for it to 6 steps later, 2
    #   ranks. They sum two half-batch gradients instead of one: ~1e-8 apart, against
    #   ~4e-4 that one step moves them.
    # A run from the start is no reference: the ~1e-8 from the first steps on 2 ranks can
    # flip a ReLU whose input is ~0 (here at step 38 of one run), and the runs then part by
    # ~1e-5 a step.
    run = tmp_path / "run" / "checkpoints"
    rollback = _resumed(tmp_path / "rollback", run, commit, commit + 6, placement)
    assert relative_difference(checkpoint_weights(run / f"ckpt-{commit + 6}"), rollback) < 1e-7
    join = int(joined.group(1))
    assert join % 3 == 0 and join > commit + 6, join
    returned = _resumed(tmp_path / "return", run, join, join + 6, placement)
    difference = relative_difference(checkpoint_weights(run / f"ckpt-{join + 6}"), returned)
    assert difference < 1e-5, (commit, join, difference)


def _resumed(run_dir, checkpoints, start: int, stop: int, placement: list[str]) -> dict:
    """The weights after one process resumed from checkpoints/ckpt-{start} trains to step
    `stop` (trainer.max_steps, which leaves the step schedule as it is), its towers placed
    as `placement` says."""
    os.makedirs(run_dir / "checkpoints")
    for f in checkpoints.glob(f"ckpt-{start}.*"):
        shutil.copy(f, run_dir / "checkpoints" / f.name)
    (run_dir / "checkpoints" / "checkpoint").write_text(
        f'model_checkpoint_path: "ckpt-{start}"\nall_model_checkpoint_paths: "ckpt-{start}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.cli.train", *TINY, *placement,
         f"trainer.max_steps={stop}", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {run_dir / 'checkpoints' / f'ckpt-{start}'}" in done.stdout + done.stderr
    return checkpoint_weights(run_dir / "checkpoints" / f"ckpt-{stop}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_hung_rank_is_stopped_the_survivor_goes_on_and_a_fresh_rank_takes_its_place(tmp_path):
    # Fault: rank 1 of 2 is stopped (SIGSTOP: a stalled filesystem, a wedged driver) and
    # its host stays listed. Behaviour: rank 0's all-reduce fails after
    # distribute.peer_timeout_s; at the rendezvous, horovodrun's driver (the project's
    # patch, tools/horovod/elastic-hung-worker.patch) waits as long again for rank 1, then
    # records it as failed: its host is blacklisted and its process killed. Rank 0 goes on
    # alone from the last commit. After the cooldown the host is taken back, a fresh rank
    # starts there and takes rank 0's state at the next commit. Nobody spins meanwhile.
    peer_timeout = 10
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost:1\n127.0.0.1:1\n")
    log = tmp_path / "elastic.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [HOROVODRUN, "--gloo", "-np", "2", "--min-np", "1", "--max-np", "2",
             "--host-discovery-script", os.path.join(REPO, "launch", "discover_hosts.sh"),
             "--blacklist-cooldown-range", "1", "2",
             sys.executable, "-m", "alexnet_dist.cli.train", "distribute=horovod",
             "distribute.elastic=true", "distribute.commit_every_steps=3",
             f"distribute.peer_timeout_s={peer_timeout}", *TINY, "trainer.epochs=100000",
             f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "ALEXNET_HOSTS_FILE": str(hosts)},
        )  # fmt: skip
    try:
        _wait_for(log, r"step 5/")
        survivor, victim = (trainer(proc.pid, "HOROVOD_RANK", r) for r in ("0", "1"))
        os.kill(victim, signal.SIGSTOP)
        # While rank 0 waits, first for the all-reduce and then at the rendezvous, it
        # sleeps: a spinning wait would take about a core (5 s of CPU in 5 s).
        _wait_for(log, r"Timed out waiting", timeout=peer_timeout + 60)
        time.sleep(1)
        before = cpu_seconds(survivor), cpu_seconds(proc.pid)
        time.sleep(5)
        used = cpu_seconds(survivor) - before[0], cpu_seconds(proc.pid) - before[1]
        assert used[0] < 1.5 and used[1] < 1.5, f"CPU seconds in 5 s (rank 0, horovodrun): {used}"

        _wait_for(log, rf"did not come to the rendezvous within {peer_timeout} s", timeout=60)
        lost = _wait_for(
            log, r"2 -> 1 ranks, this is rank 0; going on from the commit at step (\d+)", 60
        )
        commit = int(lost.group(1))
        deadline = time.monotonic() + 30
        while alive(victim) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(victim), "the hung rank was not stopped"
        assert re.search(rf"\[0\]<stdout>:.* step {commit + 1}/", _after(log, "2 -> 1 ranks"))

        # The host is still listed: after its cooldown a fresh rank joins, and both ranks
        # hold the same state from there.
        joined = _wait_for(log, r"ranks were added; 1 -> 2 ranks.* at step (\d+)", timeout=180)
        step = int(joined.group(1))
        held = _wait_for(
            log,
            rf"\[1\]<stdout>:.*rank 1 of 2 holds rank 0's state at step {step} \(digest (\w+)\)",
        )
        ours = re.search(
            rf"\[0\]<stdout>:.*rank 0 of 2 holds rank 0's state at step {step} \(digest (\w+)\)",
            log.read_text(),
        )
        assert ours and ours.group(1) == held.group(1)
        assert trainer(proc.pid, "HOROVOD_RANK", "1") != victim
        _wait_for(log, rf"\[0\]<stdout>:.* step {step + 3}/")  # and they train on together
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def _after(log, marker: str) -> str:
    text = log.read_text()
    return text[text.index(marker) :]
