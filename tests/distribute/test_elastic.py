"""Elastic Horovod: a rank dies mid-run, the survivor goes on alone, the host comes back.

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


def test_training_goes_on_when_a_rank_dies_and_takes_it_back_when_its_host_returns(tmp_path):
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
             "distribute.elastic=true", "distribute.commit_every_steps=3", *TINY,
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
    rollback = _resumed(tmp_path / "rollback", run, commit, commit + 6)
    assert relative_difference(checkpoint_weights(run / f"ckpt-{commit + 6}"), rollback) < 1e-7
    join = int(joined.group(1))
    assert join % 3 == 0 and join > commit + 6, join
    returned = _resumed(tmp_path / "return", run, join, join + 6)
    difference = relative_difference(checkpoint_weights(run / f"ckpt-{join + 6}"), returned)
    assert difference < 1e-5, (commit, join, difference)


def _resumed(run_dir, checkpoints, start: int, stop: int) -> dict:
    """The weights after one process resumed from checkpoints/ckpt-{start} trains to step
    `stop` (trainer.max_steps, which leaves the step schedule as it is)."""
    os.makedirs(run_dir / "checkpoints")
    for f in checkpoints.glob(f"ckpt-{start}.*"):
        shutil.copy(f, run_dir / "checkpoints" / f.name)
    (run_dir / "checkpoints" / "checkpoint").write_text(
        f'model_checkpoint_path: "ckpt-{start}"\nall_model_checkpoint_paths: "ckpt-{start}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.cli.train", *TINY, f"trainer.max_steps={stop}",
         f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {run_dir / 'checkpoints' / f'ckpt-{start}'}" in done.stdout + done.stderr
    return checkpoint_weights(run_dir / "checkpoints" / f"ckpt-{stop}")
