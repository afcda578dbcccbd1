"""A peer that stopped answering mid-training: the error every other worker ends with.

`distribute.peer_timeout_s` is the bound. MultiWorkerMirroredStrategy: it is the
heartbeat timeout of TensorFlow's coordination service (strategy.py sets it);
the service on worker 0 declares a worker that sent none for that long dead, and
every worker's pending collective fails with a message naming it. Horovod with
Gloo: it is Gloo's timeout on one collective (horovod.py sets it); the ranks'
pending all-reduce fails after it, without a name. A hung, stopped (SIGSTOP) or
unreachable process is found within about twice the bound (the service checks
heartbeats at that interval); a dead one sooner, as its connections close.

The other workers then exit with EXIT_PEER_LOST and a message naming the worker
where TensorFlow names it. Their last checkpoint is the one to resume from.
"""

import re

EXIT_PEER_LOST = 69  # EX_UNAVAILABLE: "a service is unavailable"

_UNHEALTHY = re.compile(r"stopped sending heartbeats\):\s*((?:/job:\w+/replica:\d+/task:\d+\s*)+)")


def lost_peer(error: BaseException, timeout_s: float, worker_index: int) -> str | None:
    """What to tell the user when `error` means a peer stopped answering; else None."""
    text = str(error)
    bound = f"distribute.peer_timeout_s={timeout_s:g} seconds"
    unhealthy = _UNHEALTHY.search(text)
    if unhealthy:
        tasks = sorted({int(t) for t in re.findall(r"task:(\d+)", unhealthy.group(1))})
        names = ", ".join(f"worker {t}" for t in tasks)
        return (
            f"{names} stopped answering: no heartbeat for {bound} (the process hangs, is "
            "stopped, or its node is gone); every worker stops"
        )
    if "Collective ops is aborted by" in text and "Deadline Exceeded" in text:
        # The heartbeat to the coordination service timed out: its host did not answer.
        who = "worker 0, which runs the coordination service," if worker_index else "a worker"
        return f"{who} did not answer within {bound}; every worker stops"
    # The collective that was pending when Gloo gave up carries Gloo's own message
    # ("Timed out waiting 5000ms for recv operation", "Connection reset by peer"); the
    # ones after it, Horovod's.
    horovod_op = "HorovodGroupedAllreduce" in text or "HorovodAllreduce" in text
    if "Horovod has been shut down" in text or (horovod_op and "gloo" in text.lower()):
        return (
            f"a Horovod collective failed: another rank exited, or did not answer within "
            f"{bound} (Gloo's timeout); see the other ranks' output for an error of their own"
        )
    return None
