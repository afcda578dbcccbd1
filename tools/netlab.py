#!/usr/bin/env python3
"""The project's launch paths on the emulated nodes of tools/netlab.sh.

    tools/netlab.sh up 2 --rate 1gbit
    .venv/bin/python tools/netlab.py rate 0 1                  # what the link carries
    .venv/bin/python tools/netlab.py horovod -- debug=tiny     # one Horovod rank per node
    .venv/bin/python tools/netlab.py horovod --ranks-per-node 2 -- ...
    .venv/bin/python tools/netlab.py multiworker -- debug=tiny # one MWMS worker per node
    tools/netlab.sh down

Horovod ranks start without ssh or horovodrun: this process runs Horovod's Gloo
rendezvous (the HTTP key-value store horovodrun runs) on the lab's bridge
address, and starts each rank in its node's namespace with the environment
horovodrun gives a Gloo rank (rank, size, local and cross ranks, the rendezvous
address, the node's eth0). The ranks then talk to each other over the nodes'
rate-limited links only. MultiWorkerMirroredStrategy workers are told the
nodes' addresses with distribute.cluster=hosts, as on a cluster without Slurm.
Each process is pinned to a core of its own (taskset) unless --no-pin. Rank
or worker 0 prints to the console; the others log to worker-<i>.log in the run
directory. If one fails, the rest are stopped and the exit code is the failed
one's.

`Lab` is the same from Python (the tests and tools/bench_links.py use it).
"""

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "netlab.sh")
sys.path.insert(0, REPO)

from alexnet_dist.distribute import launcher  # noqa: E402

# The port each node's MultiWorkerMirroredStrategy worker listens on: every node has
# its own network namespace, so all can use the same one.
WORKER_PORT = 8888


@dataclasses.dataclass(frozen=True)
class Node:
    index: int
    namespace: str
    host_link: str  # the host's end of the node's veth, in the host's namespace
    address: str


@dataclasses.dataclass(frozen=True)
class Lab:
    """A lab that tools/netlab.sh brought up, read from its state directory."""

    name: str
    nodes: list[Node]
    rate_bits: int  # each link's rate, bits per second, each way
    host_address: str  # the bridge's address: the host as the nodes reach it

    @classmethod
    def up(cls, nodes: int, rate: str = "1gbit", name: str = "lab", *options: str) -> "Lab":
        """Brings a lab of `nodes` nodes up (tools/netlab.sh up; `options` are its own,
        e.g. "--subnet", "10.92.0") and returns it."""
        _netlab("up", str(nodes), "--rate", rate, "--name", name, *options)
        return cls.read(name)

    @classmethod
    def read(cls, name: str = "lab") -> "Lab":
        state = os.environ.get("NETLAB_DIR") or f"/tmp/netlab-{name}"
        try:
            with open(os.path.join(state, "lab")) as f:
                values = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        except FileNotFoundError:
            raise SystemExit(
                f"netlab: lab '{name}' is not up (no {state}/lab): tools/netlab.sh up N"
            ) from None
        nodes = []
        for i in range(int(values["nodes"])):
            namespace, host_link, address = values[f"node.{i}"].split()
            nodes.append(Node(i, namespace, host_link, address))
        return cls(name, nodes, int(values["rate_bits"]), values["host_address"])

    def down(self) -> None:
        _netlab("down", "--name", self.name)

    def set_rate(self, rate: str) -> "Lab":
        """The lab with its links at `rate` (tc's units, e.g. "200mbit")."""
        _netlab("set", "--rate", rate, "--name", self.name)
        return self.read(self.name)

    def prefix(self, node: int, cpus: str | None = None) -> tuple[str, ...]:
        """What runs a command on `node` (pinned to `cpus`, taskset's list, if given)."""
        run = ("ip", "netns", "exec", self.nodes[node].namespace)
        return (*run, "taskset", "-c", cpus) if cpus is not None else run

    def link_bytes(self) -> list[tuple[int, int]]:
        """Bytes each node has sent and received over its link so far, as its veth counts
        them: the payload, plus one set of headers per offloaded (TSO) segment."""

        def read(link, counter):
            with open(f"/sys/class/net/{link}/statistics/{counter}") as f:
                return int(f.read())

        # The host's end counts the other way: what it receives, the node sent.
        return [(read(n.host_link, "rx_bytes"), read(n.host_link, "tx_bytes")) for n in self.nodes]

    def wire_bytes(self, node: int) -> tuple[int, int]:
        """Bytes node `node` has sent and received as its token buckets count them: every
        packet with its headers, what the rate applies to."""

        def sent(*netns, device):
            out = subprocess.run(["tc", *netns, "-s", "-j", "qdisc", "show", "dev", device],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            return next(q["bytes"] for q in json.loads(out) if q["kind"] == "tbf")

        n = self.nodes[node]
        return sent("-n", n.namespace, device="eth0"), sent(device=n.host_link)


def _netlab(*args: str) -> None:
    result = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"tools/netlab.sh {' '.join(args)} failed:\n{result.stderr.strip()}")


def _cpus(process: int, pin: bool) -> str | None:
    return str(process % os.cpu_count()) if pin else None


def measure_rate(lab: Lab, sender: int, receiver: int, seconds: float = 2.0) -> float:
    """Bits per second on the wire of a TCP stream from node `sender` to node `receiver`
    (what the rate limit counts: IP and TCP headers included)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 5999)); s.listen(1); print('ready', flush=True)\n"
        "c, _ = s.accept(); b = bytearray(1 << 20)\n"
        "while c.recv_into(b): pass\n"
    )
    sink = subprocess.Popen(
        [*lab.prefix(receiver), sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the receiver on node {receiver} did not start")
        send = (
            "import socket,sys,time\n"
            f"c=socket.create_connection(('{lab.nodes[receiver].address}', 5999))\n"
            "d=b'\\0' * (1 << 20); t=time.perf_counter() + 0.5\n"
            "while time.perf_counter() < t: c.sendall(d)\n"  # the bucket's burst, spent
            "print('start', flush=True); t=time.perf_counter() + float(sys.argv[1])\n"
            "while time.perf_counter() < t: c.sendall(d)\n"
            "print('end', flush=True)\n"
        )
        source = subprocess.Popen(
            [*lab.prefix(sender), sys.executable, "-c", send, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        source.stdout.readline()
        start, sent = time.perf_counter(), lab.wire_bytes(sender)[0]
        source.stdout.readline()
        elapsed, sent = time.perf_counter() - start, lab.wire_bytes(sender)[0] - sent
        source.wait(30)
        return 8 * sent / elapsed
    finally:
        sink.kill()
        sink.wait()


# The chief's progress line (training/loop.py): "... step 12/40 ... 63.1 img/s".
STEP_LINE = re.compile(r"step (\d+)/\d+ .* ([\d.]+) img/s")


@dataclasses.dataclass
class StepLog:
    """The chief's step lines as the job printed them, each with the time it was read and
    the bytes every node had sent by then: the traffic of steps a..b is the difference."""

    lab: Lab
    steps: list[tuple[int, float, list[int]]] = dataclasses.field(default_factory=list)
    lines: list[str] = dataclasses.field(default_factory=list)

    def read(self, line: str) -> None:
        self.lines.append(line)
        if match := STEP_LINE.search(line):
            sent = [s for s, _ in self.lab.link_bytes()]
            self.steps.append((int(match.group(1)), time.perf_counter(), sent))

    def per_step(self, first: int) -> tuple[float, list[float]]:
        """Seconds per step and bytes each node sent per step from step `first` on (after
        tracing and warm-up): the medians over the intervals between step lines, so that a
        step that also evaluates or checkpoints does not count."""
        marks = [m for m in self.steps if m[0] >= first]
        if len(marks) < 2:
            raise RuntimeError(f"fewer than two step lines from step {first}: {self.steps}")
        spans = list(zip(marks, marks[1:], strict=False))
        seconds = statistics.median((t1 - t0) / (s1 - s0) for (s0, t0, _), (s1, t1, _) in spans)
        sent = [
            statistics.median((b1[i] - b0[i]) / (s1 - s0) for (s0, _, b0), (s1, _, b1) in spans)
            for i in range(len(marks[0][2]))
        ]
        return seconds, sent


def _run_job(lab, starts, role, timeout, echo) -> tuple[int, StepLog]:
    """Starts each (node, cpus, command, env) of `starts`; the first one's output is read
    (echoed if `echo`) into a StepLog, the others' discarded (they log to worker-<i>.log)."""
    log, procs = StepLog(lab), []
    try:
        for i, (node, cpus, command, env) in enumerate(starts):
            out = subprocess.PIPE if i == 0 else subprocess.DEVNULL
            procs.append(subprocess.Popen([*lab.prefix(node, cpus), *command], env=env,
                                          stdout=out, stderr=subprocess.STDOUT if i == 0 else None,
                                          text=True))  # fmt: skip

        def pump():
            for line in procs[0].stdout:
                log.read(line)
                if echo:
                    sys.stdout.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        code = launcher.supervise(procs, role, timeout)
        reader.join(10)
        return code, log
    finally:
        launcher.stop_all(procs)


def _train(run_dir: str, backend: str, overrides: list[str], python: str) -> list[str]:
    command = [python, "-m", "alexnet_dist.cli.train", f"distribute={backend}"]
    return command + [f"hydra.run.dir={run_dir}", *overrides]


def horovod(
    lab: Lab,
    run_dir: str,
    overrides: list[str],
    ranks_per_node: int = 1,
    nodes: int | None = None,
    pin: bool = True,
    timeout: float | None = None,
    echo: bool = True,
    python: str = sys.executable,
) -> tuple[int, StepLog]:
    """alexnet-train with distribute=horovod, `ranks_per_node` ranks on each of the first
    `nodes` nodes, over Gloo. Returns 0 or the first failed rank's exit code, and rank 0's
    step lines."""
    command = _train(run_dir, "horovod", overrides, python)
    return horovod_command(lab, command, ranks_per_node, nodes, pin, timeout, echo)


def horovod_command(
    lab: Lab,
    command: list[str],
    ranks_per_node: int = 1,
    nodes: int | None = None,
    pin: bool = True,
    timeout: float | None = None,
    echo: bool = True,
) -> tuple[int, StepLog]:
    """`command` as Horovod ranks over Gloo, `ranks_per_node` on each of the first `nodes`."""
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts
    from horovod.runner.gloo_run import create_run_env_vars, create_slot_env_vars
    from horovod.runner.http import signing
    from horovod.runner.http.http_server import RendezvousServer

    signing.ensure_job_key()  # the ranks inherit it; the rendezvous refuses who lacks it
    used = lab.nodes[: nodes or len(lab.nodes)]
    hosts = parse_hosts(",".join(f"{n.namespace}:{ranks_per_node}" for n in used))
    slots = get_host_assignments(hosts, ranks_per_node * len(used))
    rendezvous = RendezvousServer()
    port = rendezvous.start()
    rendezvous.init(slots)
    node_of = {n.namespace: n.index for n in used}
    starts = []
    for slot in slots:
        env = {
            **os.environ,
            **create_run_env_vars(lab.host_address, ["eth0"], str(port)),
            **create_slot_env_vars(slot),
            "PYTHONUNBUFFERED": "1",
        }
        starts.append((node_of[slot.hostname], _cpus(slot.rank, pin), command, env))
    try:
        return _run_job(lab, starts, "rank", timeout, echo)
    finally:
        rendezvous.stop()


def multiworker(
    lab: Lab,
    run_dir: str,
    overrides: list[str],
    nodes: int | None = None,
    pin: bool = True,
    timeout: float | None = None,
    echo: bool = True,
    python: str = sys.executable,
) -> tuple[int, StepLog]:
    """alexnet-train with distribute=multiworker, one worker on each of the first `nodes`
    nodes, told the cluster by distribute.cluster=hosts."""
    used = lab.nodes[: nodes or len(lab.nodes)]
    hosts = ",".join(f"{n.address}:{WORKER_PORT}" for n in used)
    starts = []
    for i, n in enumerate(used):
        cluster = ["distribute.cluster=hosts", f"distribute.hosts=[{hosts}]",
                   f"distribute.task_index={i}"]  # fmt: skip
        command = _train(run_dir, "multiworker", [*cluster, *overrides], python)
        starts.append((n.index, _cpus(i, pin), command, {**os.environ, "PYTHONUNBUFFERED": "1"}))
    return _run_job(lab, starts, "worker", timeout, echo)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="lab", help="the lab's name (tools/netlab.sh --name)")
    sub = parser.add_subparsers(dest="command", required=True)
    rate = sub.add_parser("rate", help="measure what a link carries, node SENDER to RECEIVER")
    rate.add_argument("sender", type=int)
    rate.add_argument("receiver", type=int)
    rate.add_argument("--seconds", type=float, default=2.0)
    for name in ("horovod", "multiworker"):
        job = sub.add_parser(name, help=f"alexnet-train with distribute={name} on the nodes")
        job.add_argument("--nodes", type=int, default=None, help="the first N nodes (all)")
        job.add_argument("--run-dir", default=None, help="default: runs/netlab/<time>")
        job.add_argument("--no-pin", dest="pin", action="store_false",
                         help="do not pin each process to a core of its own")  # fmt: skip
        if name == "horovod":
            job.add_argument("--ranks-per-node", type=int, default=1)
        job.add_argument("overrides", nargs="*", help="Hydra overrides")
    args = parser.parse_args(argv)
    lab = Lab.read(args.name)
    if args.command == "rate":
        bits = measure_rate(lab, args.sender, args.receiver, args.seconds)
        print(f"node {args.sender} -> node {args.receiver}: {bits / 1e6:.1f} Mbit/s on the wire "
              f"(link {lab.rate_bits / 1e6:.0f} Mbit/s)")  # fmt: skip
        return 0
    run_dir = os.path.abspath(args.run_dir or time.strftime("runs/netlab/%Y-%m-%d_%H-%M-%S"))
    if args.command == "horovod":
        code, _ = horovod(lab, run_dir, args.overrides, args.ranks_per_node, args.nodes, args.pin)
    else:
        code, _ = multiworker(lab, run_dir, args.overrides, args.nodes, args.pin)
    return code


if __name__ == "__main__":
    sys.exit(main())
