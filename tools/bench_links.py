#!/usr/bin/env python3
"""The layouts measured on 2 emulated nodes at several link rates, next to the planner.

    .venv/bin/python tools/bench_links.py                 # 10gbit 1gbit 200mbit, ~35 min
    .venv/bin/python tools/bench_links.py --rates 1gbit --layouts hvd-dp hybrid --repeats 1

Brings up a lab of 2 nodes (tools/netlab.sh, name "bench"; root), one rank or worker
per node pinned to a core of its own, and trains each layout on synthetic data:

    hvd-dp    data parallelism, Horovod (ring all-reduce over Gloo)       network owt
    mwms-dp   data parallelism, MultiWorkerMirroredStrategy               network owt
    hybrid    the 2014 hybrid over the 2 ranks (ranks_per_replica=2)      network owt
    paper-dp  data parallelism, Horovod                                   network paper
    towers    the towers inside each rank (2 logical CPUs), Horovod DP    network paper

The network is full-width (4096-unit fc6 and fc7) at a small image size (67 px by
default: pool5 is 1 x 1, so the conv stack is light and fc7's 16.8 M weights dominate
the gradients): a step's gradients (~98 MB) are large against its compute, so the
trade-off between layouts shows in seconds rather than hours.

For each run: the step time (median between the chief's step lines) and the bytes each
node sent per step (its veth's counter), split into compute (the same network and batch
trained alone on one core, no link), the gradient all-reduce (timed alone by the run
before training, distribute/allreduce_timing.py) and the rest (the exchange of maps for
the hybrid and the towers; what else the step waits for otherwise). Then the planner's
prediction for the same layout from measured inputs, with the relative error: one
device's rate (the network trained alone on one core), and the link as each backend
uses it at that rate, as nccl-tests measures a cluster's (its data-parallel run's
all-reduce bytes/s, and the time of one small Horovod collective). "link only" is the
error with the rate's TCP payload as the bandwidth instead: what the link's figure
alone predicts, without the host's limits. At each rate, the planner's recommendation
against the layout that measured fastest. Speeds are machine-dependent: compare within
one run.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.planner.network import network_bytes  # noqa: E402
from alexnet_dist.planner.step_time import (  # noqa: E402
    HYBRID_RANK_COLLECTIVES,
    Cluster,
    Layout,
    Link,
    predict,
)
from tools import netlab  # noqa: E402

# TCP's payload in a 1514-byte Ethernet frame (MTU 1500, IP, TCP with timestamps).
PAYLOAD_SHARE = 1448 / 1514
ALL_REDUCE = re.compile(r"gradient all-reduce over \d+ replicas: ([\d.]+) MB in ([\d.]+) ms")
LAYOUTS = {
    # name: (network, launcher, overrides, planner layout, devices per node)
    "hvd-dp": ("owt", "horovod", [], Layout("dp"), 1),
    "mwms-dp": ("owt", "multiworker", [], Layout("dp"), 1),
    "hybrid": ("owt", "horovod", ["distribute.owt_hybrid=true", "distribute.ranks_per_replica=2"],
               Layout("hybrid", 2, across_nodes=True), 1),
    "paper-dp": ("paper", "horovod", [], Layout("dp"), 1),
    "towers": ("paper", "horovod",
               ["distribute.devices_per_replica=2", "distribute.logical_cpus=2"],
               Layout("towers", 2), 2),
}  # fmt: skip


def train_overrides(args, variant: str, workers: int) -> list[str]:
    return [
        f"model={variant}", f"model.image_size={args.image_size}", f"model.width={args.width}",
        "model.dropout=0", "data=synthetic", f"data.synthetic.num_classes={args.classes}",
        f"data.global_batch_size={args.batch * workers}", f"data.eval_batch_size={args.batch}",
        f"data.synthetic.val_examples={args.batch}", f"trainer.max_steps={args.steps}",
        "trainer.log_every_steps=1", f"trainer.checkpoint_every_steps={100 * args.steps}",
        "trainer.epochs=1", "trainer.jit_compile=false",
    ]  # fmt: skip


def bench_step_rate(lab, args, variant: str) -> float:
    """One core's images/s on the one-device network (alexnet-bench-step, on node 0)."""
    command = [*lab.prefix(0, "0"), sys.executable, "-m", "alexnet_dist.cli.bench_step",
               "--variant", variant, "--image-size", str(args.image_size), "--width",
               str(args.width), "--batch", str(args.batch), "--steps", str(args.steps),
               "--policies", "float32", "--xla", "off", "--json"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not rows:
        raise SystemExit(f"alexnet-bench-step failed:\n{out.stderr[-3000:]}")
    return float(rows[0]["images_per_sec"])


def alone_step(lab, args, variant: str, extra: list[str], run_dir: str) -> float:
    """Seconds per step of the network trained alone on one core of node 0 (no link)."""
    command = [*lab.prefix(0, "0"), sys.executable, "-m", "alexnet_dist.cli.train",
               "distribute=single", *train_overrides(args, variant, 1), *extra,
               f"hydra.run.dir={run_dir}"]  # fmt: skip
    log = netlab.StepLog(lab)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)  # fmt: skip
    for line in proc.stdout:
        log.read(line)
    if proc.wait() != 0:
        raise SystemExit("".join(log.lines[-40:]))
    return log.per_step(first=3)[0]


# Run as a Horovod rank on each node: the time of a collective that waits for the one
# before it (Horovod's negotiation and Gloo's round trip, what each of the hybrid's
# exchanges pays), for a tiny message and for one of the exchange's mean size.
COLLECTIVES = """
import os, statistics, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
import horovod.tensorflow as hvd
hvd.init()

def chain(values):
    @tf.function
    def run(x):
        for i in range(16):
            x = hvd.allgather(x, name=f"chain{values}_{i}")[:values] + 1.0
        return tf.reduce_sum(x)
    return run, tf.ones([values], tf.float32)

def median(f, arg, n):
    f(arg)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        float(f(arg))
        times.append(time.perf_counter() - start)
    return statistics.median(times)

tiny = median(*chain(64), 20) / 16
sized = median(*chain(max(64, int(sys.argv[1]) // 4)), 10) / 16
if hvd.rank() == 0:
    print(f"COLLECTIVES {tiny} {sized}", flush=True)
"""


def collectives(lab, nbytes: int) -> tuple[float, float]:
    """Seconds per dependent collective between the two nodes (one rank each, as the
    lab's links are now): of a 256-byte message, and of `nbytes` sent by each rank."""
    code, log = netlab.horovod_command(lab, [sys.executable, "-c", COLLECTIVES, str(nbytes)],
                                       timeout=300, echo=False)  # fmt: skip
    found = [line.split()[1:] for line in log.lines if line.startswith("COLLECTIVES")]
    if code or not found:
        raise SystemExit("the collectives benchmark failed:\n" + "".join(log.lines[-30:]))
    return float(found[0][0]), float(found[0][1])


def run_layout(lab, args, name: str, run_dir: str) -> dict:
    variant, launcher, extra, _, _ = LAYOUTS[name]
    overrides = [*train_overrides(args, variant, 2), *extra]
    run = netlab.horovod if launcher == "horovod" else netlab.multiworker
    code, log = run(lab, run_dir, overrides, timeout=args.timeout, echo=False)
    if code != 0:
        raise SystemExit(f"{name} failed ({code}):\n" + "".join(log.lines[-40:]))
    step, sent = log.per_step(first=3)
    timed = [ALL_REDUCE.search(line) for line in log.lines]
    timed = [m for m in timed if m]
    return {
        "step": step,
        "sent": statistics.mean(sent),
        "allreduce": float(timed[0].group(2)) / 1e3 if timed else 0.0,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", nargs="+", default=["10gbit", "1gbit", "200mbit"])
    p.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    p.add_argument("--image-size", type=int, default=67)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32, help="images per rank per step")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of each layout at each rate; the median is kept")  # fmt: skip
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--json", help="also write every figure to this file")
    args = p.parse_args(argv)

    subprocess.run(["bash", netlab.SCRIPT, "down", "--name", "bench"], capture_output=True)
    lab = netlab.Lab.up(2, "100gbit", "bench", "--subnet", "10.97.0")
    results, work = {"args": vars(args), "runs": []}, tempfile.mkdtemp(prefix="bench-links-")
    try:
        print(
            f"CPU: {_cpu()}; 2 emulated nodes, one rank per node pinned to a core; "
            f"{args.image_size} px, width {args.width:g}, {args.classes} classes, batch "
            f"{args.batch} per rank, {args.steps} steps (medians from step 3), the median of "
            f"{args.repeats} runs",
            flush=True,
        )
        variants = sorted({LAYOUTS[n][0] for n in args.layouts})
        rates = {v: bench_step_rate(lab, args, v) for v in variants}
        alone = {}
        for name in args.layouts:
            variant, _, extra, layout, _ = LAYOUTS[name]
            local = extra if layout.kind == "towers" else []
            key = (variant, tuple(local))
            if key not in alone:
                alone[key] = statistics.median(
                    alone_step(lab, args, variant, local, f"{work}/alone-{len(alone)}-{i}")
                    for i in range(args.repeats)
                )
        nets = {v: network_bytes(v, args.width, args.image_size, args.classes) for v in variants}
        alone_rates = ", ".join(f"{v} {args.batch / s:.1f} images/s trained alone"
                                for (v, k), s in alone.items() if not k)  # fmt: skip
        bench = ", ".join(f"{v} {r:.1f}" for v, r in rates.items())
        print(f"one core: {alone_rates} (alexnet-bench-step: {bench})")
        for v, net in nets.items():
            print(f"{v}: {net.parameters:,} weights, {net.gradient_bytes / 1e6:.1f} MB of "
                  f"gradients per step")  # fmt: skip
        print(
            f"{'rate':>8} {'layout':<9} {'step ms':>8} {'compute':>8} {'all-red.':>8} "
            f"{'rest':>8} {'MB/step':>8} {'img/s':>7} {'predicted':>9} {'error':>7} "
            f"{'link only':>9}"
        )
        # The mean message of the hybrid's exchanges: what a rank sends per step over them.
        message = 1 << 20
        if "owt" in nets:
            sent = nets["owt"].hybrid_exchange_bytes_per_image(2) * args.batch
            message = int(sent / HYBRID_RANK_COLLECTIVES)
        inputs = {}
        for rate in args.rates:
            lab = lab.set_rate(rate)
            # The link as each backend uses it, measured on its own at this rate, as
            # nccl-tests measures a cluster's: the bytes/s of each backend's all-reduce of
            # the gradients, timed by its data-parallel run before training
            # (distribute/allreduce_timing.py), and what a collective costs beyond its
            # bytes, at the size of the hybrid's exchanges (a chain of them, less their
            # bytes at that rate; a tiny one's time is its floor). One core moves less
            # than a fast link carries (Gloo's TCP ring about 0.8 GB/s, TensorFlow's gRPC
            # collectives a third of that), so these, not the rate, are the planner's link.
            tiny, sized = collectives(lab, message)
            # Each layout `repeats` times, the layouts interleaved, and the run of median
            # step time kept: the machine's neighbours (a shared VM) slow a run now and then.
            tries = {n: [] for n in args.layouts}
            for i in range(args.repeats):
                for n in args.layouts:
                    tries[n].append(run_layout(lab, args, n, f"{work}/{rate}-{n}-{i}"))
            got = {n: sorted(runs, key=lambda r: r["step"])[len(runs) // 2]
                   for n, runs in tries.items()}  # fmt: skip
            payload = lab.rate_bits / 8 * PAYLOAD_SHARE
            bandwidth = {}
            for dp, backend in (("hvd-dp", "horovod"), ("mwms-dp", "multiworker")):
                if dp in got and got[dp]["allreduce"]:
                    nbytes = nets[LAYOUTS[dp][0]].gradient_bytes
                    bandwidth[backend] = nbytes / got[dp]["allreduce"]
            each = max(tiny, sized - message / bandwidth.get("horovod", payload))
            inputs[rate] = {
                "collective_s": each,
                "tiny_collective_s": tiny,
                "sized_collective_s": sized,
                "allreduce_bytes_per_s": bandwidth,
            }
            print(f"{rate:>8} link: a collective {tiny * 1e3:.2f} ms ({sized * 1e3:.2f} ms with "
                  f"{message / 1e6:.2f} MB: {each * 1e3:.2f} ms beyond its bytes); all-reduce "
                  + ", ".join(f"{b} {x / 1e9:.3f} GB/s" for b, x in bandwidth.items())
                  + f" (TCP payload of the rate {payload / 1e9:.3f} GB/s)", flush=True)  # fmt: skip
            measured, predicted = {}, {}
            for name in args.layouts:
                variant, backend, extra, layout, per_node = LAYOUTS[name]
                local = extra if layout.kind == "towers" else []
                compute = alone[(variant, tuple(local))]
                # One device's rate: the network trained alone on one core, through the same
                # loop. The towers' two logical devices share that core (half its rate each)
                # and pass maps through memory (copies, no latency to speak of).
                one = args.batch / alone[(variant, ())]
                # As measured, and with the link's figure alone.
                pred, bare = (
                    predict(layout, nets[variant],
                            Cluster(per_node, 2, one / per_node, intra=Link(10e9, 1e-6),
                                    inter=link),
                            args.batch // per_node)
                    for link in (Link(bandwidth.get(backend, payload), each), Link(payload, tiny))
                )  # fmt: skip
                images = 2 * args.batch / got[name]["step"]
                measured[name], predicted[name] = images, pred.images_per_s
                error = pred.images_per_s / images - 1
                bare_error = bare.images_per_s / images - 1
                step, allreduce = got[name]["step"], got[name]["allreduce"]
                rest = step - compute - allreduce
                ms = [1e3 * step, 1e3 * compute, 1e3 * allreduce, 1e3 * rest]
                print(f"{rate:>8} {name:<9} " + " ".join(f"{x:8.0f}" for x in ms)
                      + f" {got[name]['sent'] / 1e6:8.1f} {images:7.1f} {pred.images_per_s:9.1f}"
                      f" {error:+7.1%} {bare_error:+9.1%}", flush=True)  # fmt: skip
                results["runs"].append({"rate": rate, "layout": name, **got[name],
                                        "compute": compute, "images_per_s": images,
                                        "predicted": pred.images_per_s, "predicted_step": pred.step,
                                        "error": error, "link_only_error": bare_error})  # fmt: skip
            for variant in variants:
                names = [n for n in args.layouts if LAYOUTS[n][0] == variant]
                if len(names) < 2:
                    continue
                fastest = max(names, key=measured.get)
                # The planner tells layouts apart, not backends: Horovod and MWMS are one
                # "data parallel" to it, so it recommends the fastest layout's kind. Layouts
                # within 5 % of each other measured are a tie: run-to-run noise is that large.
                kinds = {n: LAYOUTS[n][3].name for n in names}
                best = max(names, key=predicted.get)
                picked = max(measured[n] for n in names if kinds[n] == kinds[best])
                agree = kinds[best] == kinds[fastest]
                tie = picked >= 0.95 * measured[fastest]
                verdict = "agree" if agree else ("tie (within 5 %)" if tie else "DISAGREE")
                print(f"{rate:>8} {variant}: measured fastest {fastest} ({kinds[fastest]}), "
                      f"planner recommends {kinds[best]}: {verdict}")  # fmt: skip
            if "paper" in nets:
                # The paper's split across the link, one tower per node: a layout that
                # alexnet-train runs within a node only, so predicted, not measured.
                link = Link(bandwidth.get("horovod", payload), each)
                one = Cluster(1, 2, args.batch / alone[("paper", ())], Link(10e9, 1e-6), link)
                split = predict(Layout("towers", 2, across_nodes=True), nets["paper"], one,
                                args.batch)  # fmt: skip
                print(f"{rate:>8} paper, one tower per node (predicted only): "
                      f"{split.images_per_s:.1f} images/s, exchange {split.exchange * 1e3:.0f} "
                      f"ms ({split.exchange_bytes / 1e6:.1f} MB a node sends), all-reduce "
                      f"{split.allreduce * 1e3:.0f} ms per step")  # fmt: skip
                results.setdefault("towers_across_nodes", {})[rate] = split.images_per_s
        results["inputs"] = {"bench_step": rates, "links": inputs,
                             "alone_step_s": {f"{v}{'-towers' if k else ''}": s
                                              for (v, k), s in alone.items()}}  # fmt: skip
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        lab.down()
    return 0


def _cpu() -> str:
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "?")
    return f"{model}, {os.cpu_count()} cores ({socket.gethostname()})"


if __name__ == "__main__":
    sys.exit(main())
