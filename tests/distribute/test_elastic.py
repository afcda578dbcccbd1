"""Elastic Horovod: a rank dies mid-run, the survivor goes on alone, the host comes back.

The real horovodrun in elastic mode (Gloo) on localhost, with launch/discover_hosts.sh
as the discovery script. "localhost" and "127.0.0.1" are two hosts to Horovod, one
slot each, so that one of them can leave and come back.
"""

import os
import re
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

EPOCHS = 10  # 10 steps each: the host comes back at about step 15 here
# Every checkpoint kept (one each 5 steps), to compare the two runs soon after the changes.
TINY = ["debug=tiny", "model.dropout=0", f"trainer.epochs={EPOCHS}", "trainer.keep_checkpoints=100"]


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
             "trainer.log_every_steps=1",
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
        _wait_for(log, rf"step {commit + 3}/")  # alone for a while
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
    # once and in order: 5 steps after the return, the weights are those of one
    # uninterrupted process over the same records. (5 steps move them by 1.5e-3 here; the
    # two runs differ by ~1e-8, from summing two half-batch gradients instead of one. Over
    # hundreds of steps that rounding grows: by step 300 the runs differ by ~1e-2.)
    reference = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.cli.train", *TINY,
         f"hydra.run.dir={tmp_path / 'reference'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-3000:]
    step = (int(joined.group(1)) // 5 + 2) * 5
    elastic = checkpoint_weights(tmp_path / "run" / "checkpoints" / f"ckpt-{step}")
    single = checkpoint_weights(tmp_path / "reference" / "checkpoints" / f"ckpt-{step}")
    assert relative_difference(elastic, single) < 1e-5
