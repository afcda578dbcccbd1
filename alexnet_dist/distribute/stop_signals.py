"""The signals that ask a run to stop, kept away from TensorFlow's threads until it can act.

SIGTERM (scancel, preemption), SIGUSR1 (Slurm's warning before the time limit)
and SIGINT (Ctrl-C). A signal sent to a process goes to any one of its threads
that does not block it. TensorFlow starts threads of its own, and during
MultiWorkerMirroredStrategy's start-up one of them takes SIGTERM for its
preemption notifier and does nothing with it, while the main thread waits in
C++ code where Python's handlers cannot run. So `alexnet-train` holds these
signals from its first line: every thread started after that has them blocked.
They stay pending until the training run installs its handlers and releases
them (training/preemption.py), and during a start-up that blocks,
distribute/watchdog.py sees one pending and ends the process.

Standard library only: the watchdog process imports it.
"""

import signal

STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def hold() -> set[int]:
    """Blocks them in this thread and in every thread it starts; returns the previous mask."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)


def restore(mask: set[int]) -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def release() -> None:
    """Unblocks them in this thread: one that arrived while held is delivered now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)
