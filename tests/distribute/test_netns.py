"""distribute/netns.py: a process moves into a network namespace with loopback alone.

Each case runs in a process of its own: the move cannot be undone."""

import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.security

_ENTER = """
import encodings.idna, os, socket, sys  # imported before dropping to a user who cannot read them
from alexnet_dist.distribute import netns
if sys.argv[1] == "nobody":
    os.setuid(65534)
before = netns.namespace_of()
why = netns.enter_loopback_only()
print(why)
print(before != netns.namespace_of())
print(sorted(name for _, name in socket.if_nameindex()))
server = socket.create_server(("127.0.0.1", 0))
socket.create_connection(server.getsockname(), timeout=3).close()
print("loopback works")
"""


def _enter(user: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _ENTER, user], capture_output=True, text=True,
                          cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_root_gets_a_namespace_with_loopback_alone_and_up():
    why, moved, interfaces, works = _enter("root")
    assert why == "None" and moved == "True"
    assert interfaces == "['lo']"
    assert works == "loopback works"


def test_without_root_it_says_why_and_stays():
    why, moved, interfaces, works = _enter("nobody")
    assert why == "a network namespace of its own needs root (CAP_SYS_ADMIN)"
    assert moved == "False"
    assert "lo" in interfaces and works == "loopback works"
