"""A bound on blocking start-up calls: the process ends, naming the peers it cannot reach.

MultiWorkerMirroredStrategy waits for every worker before it returns, inside
TensorFlow's C++ code and holding Python's lock, so neither a Python thread nor
a signal handler of this process can run until it returns: a worker whose peer
does not resolve, or is never started, waits until the job's time limit. So the
watch runs in a small separate process (this file, run by path: stdlib only, no
TensorFlow). If the block has not finished within the time, it checks each
peer (does the name resolve, does the port answer), prints which cannot be
reached, and kills the stuck process.

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


@contextlib.contextmanager
def deadline(seconds: float, what: str, peers: list[str]):
    """Kills this process if the block takes more than `seconds`, naming unreachable peers."""
    if not seconds:
        yield
        return
    watcher = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(os.getpid()), str(seconds), what, *peers],
        stdin=subprocess.PIPE,
    )
    try:
        yield
    finally:
        watcher.stdin.close()  # the block is over: the watcher exits
        watcher.wait()


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


def _watch(pid: int, seconds: float, what: str, peers: list[str]) -> int:
    ready, _, _ = select.select([sys.stdin], [], [], seconds)
    if ready:  # end of input: the block finished (or the process is gone)
        return 0
    unreachable = [reason for reason in map(probe, peers) if reason]
    culprit = (
        "cannot reach " + ", ".join(unreachable)
        if unreachable
        else f"every peer answers ({', '.join(peers)}), but not all of them joined"
    )
    print(
        f"alexnet-train: error: {what} did not finish within distribute.timeout_s={seconds:g} "
        f"seconds: {culprit}; stopping",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(ProcessLookupError):
        # SIGKILL: a process stuck in TensorFlow's start-up does not act on SIGTERM.
        os.kill(pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]))
