"""distribute/parent_death.py: a child ends when the process that started it is killed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, alive

pytestmark = pytest.mark.security

# A parent that starts `sleep` (with the request, or without) and prints its pid.
PARENT = """
import subprocess, sys, time
from alexnet_dist.distribute import parent_death
setup = parent_death.child_setup() if sys.argv[1] == "ask" else None
child = subprocess.Popen(["sleep", "300"], preexec_fn=setup)
print(child.pid, flush=True)
time.sleep(300)
"""


def orphan_after_sigkill(mode: str, wait: float) -> tuple[int, bool]:
    """Starts PARENT in `mode`, SIGKILLs it, and says whether its child was gone within
    `wait` seconds."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE,
                              text=True, cwd=REPO)  # fmt: skip
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + wait
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    return child, not alive(child)


def test_a_child_that_asked_ends_when_its_parent_is_killed():
    _, gone = orphan_after_sigkill("ask", wait=10)
    assert gone


def test_without_the_request_the_child_outlives_its_parent():
    child, gone = orphan_after_sigkill("no", wait=2)
    try:
        assert not gone  # what the request is for: this child is left to PID 1
    finally:
        os.kill(child, signal.SIGKILL)
