"""A plan: every layout's predicted step on a cluster, at one or more sizes, and the best.

`Workload` is what is trained (network, batch per device, precision); a profile plus
the user's overrides gives the `Cluster` at each device count. Up to one node's
devices, the cluster is that many devices of one node; beyond, whole nodes.
"""

import dataclasses

from alexnet_dist.planner.network import network_bytes
from alexnet_dist.planner.profiles import Profile
from alexnet_dist.planner.step_time import Cluster, Prediction, layouts, predict


@dataclasses.dataclass(frozen=True)
class Workload:
    variant: str = "owt"
    width: float = 1.0
    image_size: int = 224
    classes: int = 1000
    batch: int = 128  # images per device per step
    precision: str = "fp32"
    fp16_allreduce: bool = False

    def network(self):
        return network_bytes(self.variant, self.width, self.image_size, self.classes,
                             self.precision, self.fp16_allreduce)  # fmt: skip

    def differs_from(self, reference: dict) -> list[str]:
        """The keys of a profile's rate_workload that this workload does not match."""
        return [k for k, v in reference.items() if getattr(self, k) != v]


def cluster(profile: Profile, devices: int, rate: float) -> Cluster:
    """`devices` devices of `profile`'s kind: part of one node, or whole nodes."""
    per_node = profile.devices_per_node
    if devices <= per_node:
        return Cluster(devices, 1, rate, profile.intra, profile.inter, profile.nics)
    if devices % per_node:
        raise ValueError(f"{devices} devices are not whole nodes of {per_node}")
    return Cluster(per_node, devices // per_node, rate, profile.intra, profile.inter,
                   profile.nics)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Plan:
    devices: int
    predictions: list[Prediction]

    @property
    def best(self) -> Prediction:
        return max(self.predictions, key=lambda p: p.images_per_s)


def plan(profile: Profile, workload: Workload, devices: int, rate: float,
         algorithm: str | None = None, overlap: str | None = None) -> Plan:  # fmt: skip
    """Every layout of `workload` on `devices` devices of `profile`, one device at `rate`."""
    net = workload.network()
    c = cluster(profile, devices, rate)
    algorithm = algorithm or profile.algorithm
    overlap = overlap or profile.overlap
    found = [predict(layout, net, c, workload.batch, algorithm, overlap)
             for layout in layouts(c, net)]  # fmt: skip
    return Plan(devices, found)


# Keys of a profile's `measured` and the layout kinds they were measured with.
MEASURED_KINDS = {"dp": "dp"}


def against_measured(p: Plan, measured: dict) -> list[tuple[Prediction, float]]:
    """(prediction, measured images/s) for each layout that `measured` (a profile's) has a
    figure for at this plan's device count."""
    found = []
    for key, points in measured.items():
        kind = MEASURED_KINDS.get(key)
        if kind and p.devices in points:
            x = next((x for x in p.predictions if x.layout.kind == kind), None)
            if x is not None:
                found.append((x, float(points[p.devices])))
    return found


def table(p: Plan) -> str:
    """The plan as text: one row per layout, then the recommendation."""
    rows = [
        f"{'layout':<36} {'step ms':>9} {'compute':>9} {'all-red.':>9} {'exchange':>9} "
        f"{'images/s':>10} {'effic.':>7}  bound by"
    ]
    for x in sorted(p.predictions, key=lambda x: -x.images_per_s):
        rows.append(
            f"{x.layout.name:<36} {1e3 * x.step:9.1f} {1e3 * x.compute:9.1f} "
            f"{1e3 * x.allreduce:9.1f} {1e3 * x.exchange:9.1f} {x.images_per_s:10.0f} "
            f"{x.efficiency:7.1%}  {x.bound}"
        )
    best = p.best
    rows.append(
        f"recommended on {p.devices} devices: {best.layout.name}, {best.images_per_s:,.0f} "
        f"images/s, global batch {p.devices * best.batch:,}"
    )
    return "\n".join(rows)
