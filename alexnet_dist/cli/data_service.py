"""A tf.data service dispatcher or worker, for trainers that offload their input pipeline.

    python -m alexnet_dist.cli.data_service dispatcher --port 5050 [--work-dir DIR]
    python -m alexnet_dist.cli.data_service worker --dispatcher host:5050 --port 5051
    python -m alexnet_dist.cli.data_service run -n 2 -- COMMAND...

launch/data_service.sh and slurm/data_service.sbatch start them; data/service.py
says how training uses the service. `run` is the service for one machine: a dispatcher
at localhost:5050, N workers and COMMAND (a trainer pointed at grpc://localhost:5050) in
a network namespace with loopback alone (as root), so that nothing but COMMAND reaches
the service's servers, which run the graphs they are sent (docs/security.md). It ends
with COMMAND, and returns its exit code.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

# Who started this process, read before TensorFlow loads (seconds): --die-with-parent
# then notices a parent that died meanwhile.
_PARENT = os.getppid()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from alexnet_dist.distribute import launcher, netns, parent_death  # noqa: E402

READY_SECONDS = 120  # for the dispatcher to listen (it loads TensorFlow first)


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
    r = sub.add_parser("run", help="a dispatcher, N workers and COMMAND, which alone can reach "
                                    "them (a namespace of their own, as root)")  # fmt: skip
    r.add_argument("-n", "--workers", type=int, default=2)
    r.add_argument("--port", type=int, default=5050, help="the dispatcher's; workers take the next")
    r.add_argument("--work-dir", default=None, help="the dispatcher's state for restarts")
    r.add_argument("--share-network", action="store_true",
                   help="stay in this machine's network: every interface can then reach the "
                        "service")  # fmt: skip
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- the trainer's command line")
    for role in (d, w):
        role.add_argument("--die-with-parent", action="store_true",
                          help="end (SIGTERM) when the process that started this one dies, "
                               "even by SIGKILL (the launch scripts pass it)")  # fmt: skip
    args = p.parse_args(argv)
    if args.role == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            r.error("run needs the command that uses the service, after --")
        if not 1 <= args.workers <= 999 or not 1 <= args.port <= 65535 - args.workers:
            r.error(f"-n takes 1-999 workers and --port leaves room for them; got "
                    f"-n {args.workers} --port {args.port}")  # fmt: skip
        return run(command, args.workers, args.port, args.work_dir, args.share_network)
    from alexnet_dist.data import service  # TensorFlow: not in `run`, which only supervises

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


def run(command: list[str], workers: int, port: int, work_dir: str | None,
        share_network: bool) -> int:  # fmt: skip
    """The service and `command`, supervised together (distribute/launcher.supervise): the
    command's end is the job's; a server that ends first fails it."""
    if not share_network:
        why = netns.enter_loopback_only()
        if why:
            print(f"data service: it shares this machine's network ({why}); its servers listen "
                  "on every interface (docs/security.md)", file=sys.stderr, flush=True)  # fmt: skip
    me = [sys.executable, "-m", "alexnet_dist.cli.data_service"]
    dispatcher = [*me, "dispatcher", "--port", str(port)]
    if work_dir:
        dispatcher += ["--work-dir", work_dir]

    def start(cmd):  # a child that ends with this process, even if it is killed outright
        return subprocess.Popen(cmd, preexec_fn=parent_death.child_setup())

    procs = [start(dispatcher)]
    for i in range(1, workers + 1):
        worker = ["worker", "--dispatcher", f"localhost:{port}", "--port", str(port + i)]
        procs.append(start([*me, *worker, "--host", "localhost"]))
    names = ["dispatcher"] + [f"service worker {i}" for i in range(1, workers + 1)]
    deadline = time.monotonic() + READY_SECONDS
    while not _listening(port):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            print(f"data service: the dispatcher did not listen on {port} within "
                  f"{READY_SECONDS} s", file=sys.stderr, flush=True)  # fmt: skip
            launcher.stop_all(procs)
            return 1
        time.sleep(0.2)
    print(f"tf.data service: dispatcher grpc://localhost:{port}, {workers} worker(s); "
          f"running {' '.join(command)}", file=sys.stderr, flush=True)  # fmt: skip
    try:
        procs.append(start(command))
    except OSError as e:
        launcher.stop_all(procs)
        print(f"data service: cannot run {command[0]}: {e}", file=sys.stderr, flush=True)
        return 127
    return launcher.supervise(procs, names + ["the command"], until=len(procs) - 1)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("localhost", port), timeout=1).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
