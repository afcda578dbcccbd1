"""Local multi-worker launcher: N alexnet-train processes on this machine, one TF_CONFIG each.

    python -m alexnet_dist.cli.multiworker -n 2 --run-dir runs/mw -- trainer.epochs=5

Every worker gets the same pinned run directory (so they share one set of
checkpoints, written by worker 0) and a TF_CONFIG with free localhost ports. As root,
the workers run in a network namespace with loopback alone, so that no other machine
can reach the servers TensorFlow starts on every interface (--share-network: not).
Worker 0's output is the job's console; the others log to worker-<i>.log in the
run directory. If any worker fails, the others are stopped and the launcher
exits with the failing worker's exit code (128 + signal for a killed one), so a
dead worker ends the job instead of leaving its peers blocked in an all-reduce.
`supervise` does that for any set of processes (tools/netlab.py's ranks too).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from alexnet_dist.distribute import cluster, netns, parent_death
from alexnet_dist.distribute.peers import EXIT_PEER_LOST

GRACE_SECONDS = 10
EXIT_TIMEOUT = 124  # as timeout(1)


def free_ports(count: int) -> list[int]:
    """Ports that were free a moment ago (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_command(overrides: list[str], python: str) -> list[str]:
    return [python, "-m", "alexnet_dist.cli.train", "distribute=multiworker", *overrides]


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, T for stopped, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _name(role: str | list[str], index: int) -> str:
    return role[index] if isinstance(role, list) else f"{role} {index}"


def _failure(procs: list[subprocess.Popen], index: int, code: int, role: str | list[str]) -> str:
    """The launcher's line for process `index` failing, naming a stopped peer if there is one."""
    line = f"{_name(role, index)} exited with {code}"
    if code == EXIT_PEER_LOST:
        line += " (a peer stopped answering)"
    stopped = [i for i, p in enumerate(procs) if p.poll() is None and _state(p.pid) in ("T", "t")]
    if stopped:
        names = ", ".join(f"{_name(role, i)} (pid {procs[i].pid})" for i in stopped)
        line += f"; {names} is stopped (SIGSTOP, Ctrl-Z or a debugger)"
    return line + "; stopping the others"


def stop_all(procs: list[subprocess.Popen]) -> None:
    """Stops every process still running: SIGTERM, then SIGKILL after GRACE_SECONDS."""
    for p in procs:
        if p.poll() is None:
            # A stopped worker would act on SIGTERM only once resumed, and then only to fail.
            p.kill() if _state(p.pid) in ("T", "t") else p.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(
    num_workers: int,
    run_dir: str,
    overrides: list[str],
    python: str = sys.executable,
    share_network: bool = False,
) -> int:
    """Runs the workers to the end; returns 0, or the exit code of the first that failed.

    Unless `share_network`, this process first moves into a network namespace of its own
    with loopback alone (distribute/netns.py), and the workers with it: their servers
    cannot be reached from other machines, nor from this one's other processes."""
    if not share_network:
        why = netns.enter_loopback_only()
        if why:
            print(f"launcher: the workers share this machine's network ({why}); their "
                  "TensorFlow servers listen on every interface (docs/security.md)",
                  file=sys.stderr, flush=True)  # fmt: skip
    addresses = [f"localhost:{port}" for port in free_ports(num_workers)]
    procs = []
    for index in range(num_workers):
        # The run directory through ALEXNET_RUN_DIR (conf/config.yaml): Hydra takes it as it
        # is, where an override's value would be parsed (a comma makes a sweep).
        env = {**os.environ, "TF_CONFIG": json.dumps(cluster.tf_config(addresses, index)),
               "ALEXNET_RUN_DIR": run_dir}  # fmt: skip
        stdout = None if index == 0 else subprocess.DEVNULL
        # A worker gets SIGTERM (its preemption path: it stops at a step boundary) if this
        # launcher is killed outright and cannot stop it itself.
        procs.append(subprocess.Popen(worker_command(overrides, python), env=env, stdout=stdout,
                                      preexec_fn=parent_death.child_setup()))  # fmt: skip
    return supervise(procs, "worker")


def supervise(
    procs: list[subprocess.Popen],
    role: str | list[str] = "worker",
    timeout: float | None = None,
    until: int | None = None,
) -> int:
    """Waits for the job's processes (`role` 0, 1, ..., or a name each): 0 when all succeed;
    when one fails, stops the others and returns its exit code. SIGTERM and SIGINT go to
    every process. After `timeout` seconds, stops them all and returns EXIT_TIMEOUT. With
    `until`, the job is process `until` (the others serve it): its success ends the job,
    and any other process that ends, even with 0, fails it."""

    def forward(signum, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            codes = [p.poll() for p in procs]
            if until is not None and codes[until] == 0:
                return 0
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if until is not None:
                failed += [(i, 0) for i, c in enumerate(codes) if c == 0 and i != until]
            if failed:
                index, code = failed[0]
                print(
                    f"launcher: {_failure(procs, index, _exit_code(code), role)}",
                    file=sys.stderr,
                    flush=True,
                )
                stop_all(procs)
                return _exit_code(code) or 1  # 0: a server of `until` ended before it
            if all(c == 0 for c in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                print(f"launcher: the job ran past {timeout:.0f} s; stopping it", file=sys.stderr,
                      flush=True)  # fmt: skip
                return EXIT_TIMEOUT
            time.sleep(0.2)
    finally:
        stop_all(procs)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
