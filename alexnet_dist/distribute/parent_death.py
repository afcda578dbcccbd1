"""Processes that end when the process that started them dies, even by SIGKILL.

A launcher that is killed outright (SIGKILL, the OOM killer) runs no cleanup, and the
workers it started would keep running under PID 1, holding ports, cores and memory.
Linux delivers a chosen signal to a process when its parent dies if the process asked
for it (prctl PR_SET_PDEATHSIG); the request survives exec. Elsewhere this does nothing.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def ask(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Asks for `sig` when this process's parent dies. If the parent (`parent`, or the
    current one) is already gone, ends now: the signal would never come."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid() if parent is None else parent
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)


def child_setup(sig: int = signal.SIGTERM):
    """A `preexec_fn` for subprocess.Popen: the child gets `sig` when this process dies."""
    parent = os.getpid()

    def setup():
        ask(sig, parent)

    return setup
