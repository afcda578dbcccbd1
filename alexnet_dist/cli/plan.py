"""alexnet-plan: which layout to run on a cluster, and what it does at 8, 64 or 1,024 GPUs.

    alexnet-plan --profile dgx1-p100 --devices 1 2 4 8
    alexnet-plan --profile dgx-h100 --devices 8 64 256 1024 --plot h100.png
    alexnet-plan --profile my-cluster.yaml --variant paper --batch 128 --rate 900
    alexnet-plan --profile dgx1-p100 --inter-bandwidth 25gbit --algorithm hierarchical

Every layout's predicted step (compute, all-reduce, exchange), images/s, scaling
efficiency and what bounds it, then the recommendation; the model is
docs/planner.md's. A profile (built-in or a YAML file) gives the devices, links and
one device's rate; every one of them can be overridden here.
"""

import argparse
import dataclasses
import json
import os
import sys

# The byte counts come from the network alexnet-train builds (Keras on TensorFlow), whose
# C++ info lines would drown the table; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.planner import profiles  # noqa: E402
from alexnet_dist.planner.plan import Workload, against_measured, plan, table  # noqa: E402
from alexnet_dist.planner.step_time import ALGORITHMS, OVERLAPS, Link  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alexnet-plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="dgx1-p100",
                   help=f"built-in ({', '.join(profiles.names())}) or a YAML file")  # fmt: skip
    p.add_argument("--devices", type=int, nargs="+", default=None,
                   help="device counts to plan for (default: one node)")  # fmt: skip
    w = p.add_argument_group("workload (default: the profile's rate_workload)")
    w.add_argument("--variant", choices=["paper", "owt"])
    w.add_argument("--width", type=float, default=1.0)
    w.add_argument("--image-size", type=int)
    w.add_argument("--classes", type=int, default=1000)
    w.add_argument("--batch", type=int, help="images per device per step")
    w.add_argument("--precision", choices=["fp32", "mixed_bfloat16", "mixed_float16"])
    w.add_argument("--fp16-allreduce", action="store_true")
    h = p.add_argument_group("hardware (default: the profile's)")
    h.add_argument("--rate", type=float,
                   help="one device's images/s on the one-device network at --batch "
                        "(alexnet-bench-step measures it)")  # fmt: skip
    h.add_argument("--devices-per-node", type=int)
    h.add_argument("--nics", type=int, help="NICs per node")
    h.add_argument("--intra-bandwidth", help="per device each way, e.g. 20GB/s")
    h.add_argument("--intra-latency", help="e.g. 5us")
    h.add_argument("--inter-bandwidth", help="per NIC each way, e.g. 100gbit")
    h.add_argument("--inter-latency", help="e.g. 5us")
    h.add_argument("--algorithm", choices=ALGORITHMS)
    h.add_argument("--overlap", choices=OVERLAPS,
                   help="none: the all-reduce follows the step; backward: it hides "
                        "behind the backward pass")  # fmt: skip
    p.add_argument("--plot", help="write a PNG of images/s against 1 to 1,024 devices")
    p.add_argument("--json", action="store_true", help="one JSON line per layout and size")
    return p


def _profile(args) -> profiles.Profile:
    prof = profiles.load(args.profile)
    links = {}
    for side in ("intra", "inter"):
        link = getattr(prof, side)
        bw, lat = getattr(args, f"{side}_bandwidth"), getattr(args, f"{side}_latency")
        links[side] = Link(
            profiles.bandwidth(bw, f"--{side}-bandwidth") if bw else link.bandwidth,
            profiles.duration(lat, f"--{side}-latency") if lat else link.latency,
        )
    return dataclasses.replace(
        prof, **links,
        devices_per_node=args.devices_per_node or prof.devices_per_node,
        nics=args.nics or prof.nics,
    )  # fmt: skip


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        prof = _profile(args)
    except profiles.ProfileError as e:
        print(f"alexnet-plan: {e}", file=sys.stderr)
        return 2
    ref = prof.rate_workload
    workload = Workload(
        variant=args.variant or ref.get("variant", "owt"),
        width=args.width,
        image_size=args.image_size or ref.get("image_size", 224),
        classes=args.classes,
        batch=args.batch or ref.get("batch", 128),
        precision=args.precision or ref.get("precision", "fp32"),
        fp16_allreduce=args.fp16_allreduce,
    )
    rate = args.rate or prof.rate
    if rate is None:
        print(f"alexnet-plan: profile {prof.name} has no rate: pass --rate", file=sys.stderr)
        return 2
    differs = workload.differs_from(ref) if not args.rate else []
    if differs or (not args.rate and args.width != 1.0):
        print(
            f"note: the profile's rate ({rate:.0f} images/s) is for {ref}; this workload "
            f"differs in {', '.join(differs) or 'width'}: measure it (alexnet-bench-step) "
            "and pass --rate",
            file=sys.stderr,
        )
    # The profile's own measurements are comparable only for the workload and rate they
    # were taken at.
    measured = prof.measured if not differs and not args.rate and args.width == 1.0 else {}
    counts = args.devices or [prof.devices_per_node]
    try:
        plans = [plan(prof, workload, n, rate, args.algorithm, args.overlap) for n in counts]
    except ValueError as e:
        print(f"alexnet-plan: {e}", file=sys.stderr)
        return 2
    for p in plans:
        known = {id(x): got for x, got in against_measured(p, measured)}
        if args.json:
            for x in p.predictions:
                print(json.dumps({
                    "profile": prof.name, "devices": p.devices, "layout": x.layout.name,
                    "step_s": x.step, "compute_s": x.compute, "allreduce_s": x.allreduce,
                    "exchange_s": x.exchange, "images_per_s": x.images_per_s,
                    "efficiency": x.efficiency, "bound": x.bound,
                    "recommended": x is p.best, "measured_images_per_s": known.get(id(x)),
                }))  # fmt: skip
            continue
        print(f"{prof.name}: {p.devices} devices, {workload.variant} x{workload.width:g} at "
              f"{workload.image_size}px, {workload.batch} images per device, "
              f"{workload.precision}, one device {rate:.0f} images/s")  # fmt: skip
        print(table(p))
        for x, got in against_measured(p, measured):
            print(f"measured {x.layout.name}: {got:,.0f} images/s ({measured.get('source')}); "
                  f"predicted {x.images_per_s:,.0f}, {x.images_per_s / got - 1:+.1%}")  # fmt: skip
        print()
    if args.plot:
        from alexnet_dist.planner.plot import device_counts
        from alexnet_dist.planner.plot import plot as draw

        sweep = [plan(prof, workload, n, rate, args.algorithm, args.overlap)
                 for n in device_counts(prof.devices_per_node)]  # fmt: skip
        draw(sweep, args.plot, f"{prof.name}: {prof.description}\n{workload.variant}, "
             f"{workload.batch} images per device, {workload.precision}", measured)  # fmt: skip
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
