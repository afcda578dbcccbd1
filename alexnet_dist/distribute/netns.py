"""A network namespace of the process's own, with loopback alone: for jobs on one machine.

TensorFlow's gRPC servers (MultiWorkerMirroredStrategy's, the tf.data service's) listen
on every interface, whatever TF_CONFIG says, and run the graphs they are sent without
checking who sends them (docs/security.md). A job whose processes all run on this
machine needs none of that reach: the local launcher moves itself into a new network
namespace, where the only interface is loopback, before it starts the workers, which
inherit it. Nothing outside can then connect to their ports, nor can the workers reach
out (a tf.data service or a dataset download elsewhere: --share-network). The namespace
ends with its last process.

It takes CAP_SYS_ADMIN (root), as `unshare --net` does; without it the launcher says so
and the workers share the machine's network.
"""

import ctypes
import ctypes.util
import errno
import fcntl
import os
import socket
import struct

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def enter_loopback_only() -> str | None:
    """Moves this process into a new network namespace with loopback up; the children it
    starts afterwards are in it too. Returns None, or why it could not."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        if code == errno.EPERM:
            return "a network namespace of its own needs root (CAP_SYS_ADMIN)"
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(code)}"
    _set_up("lo")
    return None


def _set_up(interface: str) -> None:
    """`ip link set <interface> up`, through the kernel's interface ioctl."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14s", interface.encode(), 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14s", interface.encode(),
                                                  flags | _IFF_UP, b""))  # fmt: skip


def namespace_of(pid: int | str = "self") -> str:
    """The network namespace of a process, as /proc names it (net:[inode])."""
    return os.readlink(f"/proc/{pid}/ns/net")
