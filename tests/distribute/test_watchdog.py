"""The bound on blocking start-up calls, and signals honoured during them."""

import signal
import subprocess
import sys
import time

import pytest

from alexnet_dist.distribute import watchdog
from tests.helpers import (
    run_cli,
)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_a_peer_that_cannot_be_reached_ends_the_start_within_the_timeout(tmp_path):
    # The worker would wait for its peer until the job's time limit (TensorFlow gives no
    # bound); distribute.timeout_s ends it, naming the peer and why it cannot be reached.
    hosts = "[localhost:23456,nosuchhost.invalid:2222]"
    started = time.monotonic()
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", "distribute=multiworker",
         "distribute.cluster=hosts", f"distribute.hosts={hosts}", "distribute.task_index=0",
         "distribute.timeout_s=8", f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "worker 0 joining 2 workers did not finish within distribute.timeout_s=8 seconds: "
        "cannot reach nosuchhost.invalid:2222 (the host name 'nosuchhost.invalid' does not "
        "resolve)" in result.stderr
    ), result.stderr[-2000:]
    assert time.monotonic() - started < 60


def test_a_blocked_stopping_signal_is_seen_pending():
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, sys, time\n"
         "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
         "print('ready', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "ready"
        assert watchdog.pending_signal(child.pid) is None
        child.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert watchdog.pending_signal(child.pid) == signal.SIGTERM
        assert child.poll() is None  # blocked: still alive, the signal waits
    finally:
        child.kill()
        child.wait()


# The watcher, run on a process whose block ends while its peers are being probed.
LATE_JOIN = """
import os, sys
from alexnet_dist.distribute import watchdog
read, write = os.pipe()
sys.stdin = os.fdopen(read)
def probe(address):  # the peers join (the block ends) while this one is probed
    os.close(write)
    return f"{address} (nothing listens)"
watchdog.probe = probe
watchdog._stop = lambda pid, message: print("STOPPED", message, flush=True)
watchdog._watch(os.getpid(), 0.2, "joining", ["peer:1"])
print("LEFT ALONE", flush=True)
"""


@pytest.mark.security
def test_a_block_that_finishes_while_its_peers_are_probed_is_left_alone():
    result = subprocess.run([sys.executable, "-c", LATE_JOIN], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "STOPPED" not in result.stdout and "LEFT ALONE" in result.stdout
