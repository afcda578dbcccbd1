"""A bound on blocking start-up calls, and signals honoured during them.

MultiWorkerMirroredStrategy waits for every worker before it returns, inside
TensorFlow's C++ code and holding Python's lock, so neither a Python thread nor
a signal handler of this process can run until it returns. A worker whose peer
does not resolve, or is never started, would wait until the job's time limit,
and TensorFlow's own SIGTERM handler (installed during that wait) swallows
SIGTERM, so `scancel`, preemption and Ctrl-C did not end it either.

So the watch runs in a small separate process (this file, run by path: stdlib
only, no TensorFlow):
- If the block has not finished within the time, it checks each peer (does the
  name resolve, does the port answer), prints which cannot be reached, and
  kills the stuck process.
- The stopping signals (SIGTERM, SIGINT, SIGUSR1) are held during the block
  (stop_signals.py), so they stay pending instead of reaching a
  thread that cannot act on them; the watcher sees one pending
  (/proc/PID/status) and ends the process at once, naming the signal.

    with deadline(300, "joining the cluster", ["node1:8888", "node2:8888"]):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
"""

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

from alexnet_dist.distribute.stop_signals import STOPPING, hold, restore

POLL_SECONDS = 0.2


@contextlib.contextmanager
def deadline(seconds: float, what: str, peers: list[str]):
    """Kills this process if the block takes more than `seconds` (0: no bound) or if a
    stopping signal arrives during it, naming unreachable peers or the signal."""
    watcher = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(os.getpid()), str(seconds), what, *peers],
        stdin=subprocess.PIPE,
    )
    previous = hold()
    try:
        yield
    finally:
        watcher.stdin.close()  # the block is over: the watcher exits
        watcher.wait()
        restore(previous)


def probe(address: str, timeout: float = 3.0) -> str | None:
    """Why `address` ("host:port") cannot be reached, or None if it answers."""
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError):
        return f"{address} (the host name {host!r} does not resolve)"
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.settimeout(timeout)
        try:
            s.connect(sockaddr)
        except ConnectionRefusedError:
            return f"{address} (nothing listens on port {port})"
        except OSError as e:
            return f"{address} ({e.strerror or type(e).__name__})"
    return None


def pending_signal(pid: int) -> signal.Signals | None:
    """A stopping signal sent to process `pid` and not yet delivered (blocked), if any."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:  # gone, or no /proc: nothing to watch
        return None
    pending = int(fields.get("ShdPnd", "0"), 16) | int(fields.get("SigPnd", "0"), 16)
    for signum in STOPPING:
        if pending & (1 << (signum - 1)):
            return signum
    return None


def _stop(pid: int, message: str) -> None:
    print(f"alexnet-train: {message}; stopping", file=sys.stderr, flush=True)
    with contextlib.suppress(ProcessLookupError):
        # SIGKILL: a process stuck in TensorFlow's start-up acts on nothing else.
        os.kill(pid, signal.SIGKILL)


def _watch(pid: int, seconds: float, what: str, peers: list[str]) -> int:
    # The launcher or Slurm may signal the whole process group: the watcher stays
    # until the block ends (its input closes) or it has stopped the process.
    for signum in STOPPING:
        signal.signal(signum, signal.SIG_IGN)
    end = time.monotonic() + seconds if seconds else float("inf")
    while True:
        left = end - time.monotonic()
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, min(POLL_SECONDS, left)))
        if ready:  # end of input: the block finished (or the process is gone)
            return 0
        signum = pending_signal(pid)
        if signum:
            _stop(pid, f"{signal.Signals(signum).name} received before {what} had finished")
            return 0
        if left <= 0:
            break
    unreachable = [reason for reason in map(probe, peers) if reason]
    # Probing takes up to a few seconds a peer, and the peers may have joined meanwhile:
    # look again, and leave a process whose block has finished alone.
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        return 0
    culprit = (
        "cannot reach " + ", ".join(unreachable)
        if unreachable
        else f"every peer answers ({', '.join(peers)}), but not all of them joined"
    )
    _stop(
        pid,
        f"error: {what} did not finish within distribute.timeout_s={seconds:g} seconds: {culprit}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]))
