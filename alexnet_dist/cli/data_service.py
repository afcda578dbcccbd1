"""A tf.data service dispatcher or worker, for trainers that offload their input pipeline.

    python -m alexnet_dist.cli.data_service dispatcher --port 5050 [--work-dir DIR]
    python -m alexnet_dist.cli.data_service worker --dispatcher host:5050 --port 5051

launch/data_service.sh and slurm/data_service.sbatch start them; data/service.py
says how training uses the service.
"""

import argparse
import os
import socket
import sys

# Who started this process, read before TensorFlow loads (seconds): --die-with-parent
# then notices a parent that died meanwhile.
_PARENT = os.getppid()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from alexnet_dist.data import service  # noqa: E402
from alexnet_dist.distribute import parent_death  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="A tf.data service dispatcher or worker.")
    sub = p.add_subparsers(dest="role", required=True)
    d = sub.add_parser("dispatcher", help="the service's coordinator (one per cluster)")
    d.add_argument("--port", type=int, default=5050)
    d.add_argument("--work-dir", default=None, help="state for restarts (optional)")
    w = sub.add_parser("worker", help="a process that runs the input pipelines")
    w.add_argument("--dispatcher", required=True, help="host:port of the dispatcher")
    w.add_argument("--port", type=int, default=0, help="0: any free port")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--host", default=None, help="address trainers reach this worker at")
    where.add_argument("--at-hostname", action="store_true",
                       help="trainers reach this worker at this machine's host name (one "
                            "command for every node, as srun runs it)")  # fmt: skip
    for role in (d, w):
        role.add_argument("--die-with-parent", action="store_true",
                          help="end (SIGTERM) when the process that started this one dies, "
                               "even by SIGKILL (the launch scripts pass it)")  # fmt: skip
    args = p.parse_args(argv)
    if args.die_with_parent:
        parent_death.ask(parent=_PARENT)
    if args.role == "dispatcher":
        server = service.dispatcher(args.port, args.work_dir)
        print(f"tf.data dispatcher at {server.target}", flush=True)
    else:
        host = socket.gethostname() if args.at_hostname else args.host
        server = service.worker(args.dispatcher, args.port, host)
        address = args.dispatcher.removeprefix("grpc://")
        print(f"tf.data worker for dispatcher {address} (pid {os.getpid()})", flush=True)
    server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
