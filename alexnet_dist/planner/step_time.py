"""The planner's model of one training step: compute, all-reduce and exchange, per layout.

A cluster is `nodes` nodes of `devices_per_node` devices. Devices in a node share the
intra-node link (NVLink, PCIe; one link per device in each direction); nodes talk over
their NICs (`nics` of them per node, each of `inter.bandwidth` in each direction). Every
layout gives each device `batch` images per step, which take it `batch / rate` seconds
(`rate`: the device's images/s on the one-device network at that batch, measured with
alexnet-bench-step or given). A step then costs:

- compute:    T_c = batch / rate   (the towers and the 2014 hybrid do a device's share of
  the same FLOPs; their own overheads are not modelled);
- exchange:   T_x = X / B_link + c (K - 1) a_link   (the bytes X a device sends of maps and
  their gradients, over the link between the replica's devices; c collectives per step);
- all-reduce: T_ar = max over the links of (bytes through the busiest link / its
  bandwidth) + the ring's 2 (P - 1) hops of latency, for every group of P devices that
  sums one set of gradients (all devices for data parallelism; per tower; the conv
  layers and each FC shard's peers for the hybrid), all groups at once;
- the step:   T = T_c + T_x + T_ar, or with overlap="backward" T = T_c / 3 +
  max(2 T_c / 3, T_ar) + T_x (the all-reduce hidden behind the backward pass, which is
  about two thirds of the compute).

A ring all-reduce of S bytes over P devices sends 2 (P - 1) / P S over each of its
edges. A flat ring over devices on m nodes crosses each node's NICs once each way;
"hierarchical" reduces within each node, runs the ring between nodes on the reduced
data, and broadcasts within each node: 2 (p - 1) / p S on the intra link and
2 (m - 1) / m S through the NICs, with 2 (p - 1) + 2 (m - 1) hops of latency.
Ignored: the host (input, kernel launches), contention between a node's devices for
PCIe switches, congestion in the network, and TCP/IP headers unless the link's
bandwidth is given as payload.
"""

import dataclasses
import math

from alexnet_dist.planner.network import NetworkBytes

OVERLAPS = ("none", "backward")
ALGORITHMS = ("ring", "hierarchical")
# Collectives of one training step that exchange maps (forward, then backward).
HYBRID_COLLECTIVES = 8  # 3 all-gathers and an all-to-all, 3 reduce-scatters and an all-to-all
# Over ranks, the all-to-all of the logits first gathers each rank's row count
# (distribute/rank_group.py, rows_home): one more small collective.
HYBRID_RANK_COLLECTIVES = HYBRID_COLLECTIVES + 1
TOWER_COLLECTIVES = 8  # conv3, fc6, fc7 both ways and fc8's input, forward and backward


@dataclasses.dataclass(frozen=True)
class Link:
    bandwidth: float  # bytes per second, each direction
    latency: float  # seconds per message hop


@dataclasses.dataclass(frozen=True)
class Cluster:
    devices_per_node: int
    nodes: int
    rate: float  # one device's images/s on the one-device network at the planned batch
    intra: Link
    inter: Link
    nics: int = 1  # NICs per node, each of inter.bandwidth (e.g. one per GPU on a DGX H100)

    @property
    def devices(self) -> int:
        return self.devices_per_node * self.nodes


@dataclasses.dataclass(frozen=True)
class Layout:
    kind: str  # "dp", "towers" (the 2012 split, DP x 2), "hybrid" (2014)
    k: int = 1  # devices per replica
    across_nodes: bool = False  # the replica's k devices on k nodes, one each

    @property
    def name(self) -> str:
        if self.kind == "dp":
            return "data parallel"
        where = "nodes" if self.across_nodes else "devices"
        what = "towers" if self.kind == "towers" else "2014 hybrid"
        return f"{what}, {self.k} {where} per replica"


@dataclasses.dataclass(frozen=True)
class Prediction:
    layout: Layout
    devices: int
    batch: int  # images per device per step
    compute: float  # seconds per step
    allreduce: float
    exchange: float
    step: float
    allreduce_bytes: float  # through the busiest link of the all-reduce, per step
    exchange_bytes: float  # a device sends, per step
    bound: str  # what bounds the step: compute, all-reduce (which link), exchange

    @property
    def images_per_s(self) -> float:
        return self.devices * self.batch / self.step

    @property
    def efficiency(self) -> float:
        """images/s against the devices' compute alone."""
        return self.compute / self.step


@dataclasses.dataclass(frozen=True)
class _Group:
    """`count` groups of `size` devices, each summing `nbytes` bytes, with `per_node` of a
    group's devices on every node it spans."""

    size: int
    nbytes: float
    count: int
    per_node: int


def _sums(layout: Layout, net: NetworkBytes, cluster: Cluster) -> list[list[_Group]]:
    """The step's gradient sums, by kind: the groups of one kind are disjoint, and every
    device is in one group of each kind."""
    n, p, k = cluster.devices, cluster.devices_per_node, layout.k
    if layout.kind == "dp":
        return [[_Group(n, net.gradient_bytes, 1, p)]]
    if layout.kind == "towers":
        # Tower a's gradients among the tower-a devices of every replica, tower b's likewise.
        per_node = p if layout.across_nodes else p // 2
        return [[_Group(n // 2, b, 1, per_node) for b in net.tower_gradient_bytes]]
    fc = net.gradient_bytes - net.conv_gradient_bytes
    per_node = p if layout.across_nodes else max(1, p // k)
    # The conv layers over every device; FC shard j over the replicas' j-th devices.
    return [[_Group(n, net.conv_gradient_bytes, 1, p)], [_Group(n // k, fc / k, k, per_node)]]


def allreduce_time(
    sums: list[list[_Group]], cluster: Cluster, algorithm: str
) -> tuple[float, float, str]:
    """(seconds, bytes through the busiest link, which link) of `sums`, all at once."""
    intra_bytes = inter_bytes = latency = 0.0
    for kind in sums:
        busiest_intra = 0.0
        for g in kind:
            if g.size <= 1:
                continue
            nodes = math.ceil(g.size / g.per_node)
            if algorithm == "hierarchical" and nodes > 1 and g.per_node > 1:
                intra = 2 * (g.per_node - 1) / g.per_node * g.nbytes
                inter = 2 * (nodes - 1) / nodes * g.nbytes
                hops = (2 * (g.per_node - 1), 2 * (nodes - 1))
            else:
                edge = 2 * (g.size - 1) / g.size * g.nbytes
                intra = edge if g.per_node > 1 else 0.0
                inter = edge if nodes > 1 else 0.0
                hops = (2 * (g.size - 1), 0) if nodes == 1 else (0, 2 * (g.size - 1))
            # A device's link carries the edge of its one group of this kind; a node's
            # NICs carry every group that leaves the node.
            busiest_intra = max(busiest_intra, intra)
            inter_bytes += inter * g.count
            hop_time = hops[0] * cluster.intra.latency + hops[1] * cluster.inter.latency
            latency = max(latency, hop_time)
        intra_bytes += busiest_intra
    t_intra = intra_bytes / cluster.intra.bandwidth
    t_inter = inter_bytes / (cluster.inter.bandwidth * cluster.nics)
    if inter_bytes and t_inter >= t_intra:
        return t_inter + latency, inter_bytes, "all-reduce (between nodes)"
    return t_intra + latency, intra_bytes, "all-reduce (within a node)"


def exchange(
    layout: Layout, net: NetworkBytes, cluster: Cluster, batch: int
) -> tuple[float, float]:
    """(seconds, bytes a device sends) of the maps a step moves between a replica's devices."""
    if layout.kind == "dp":
        return 0.0, 0.0
    if layout.kind == "towers":
        sent, calls = net.crosslink_bytes_per_image * batch, TOWER_COLLECTIVES
    else:
        sent = net.hybrid_exchange_bytes_per_image(layout.k) * batch
        calls = HYBRID_RANK_COLLECTIVES if layout.across_nodes else HYBRID_COLLECTIVES
    link = cluster.inter if layout.across_nodes else cluster.intra
    # Across nodes a node's NICs carry its one device's share; within a node each device
    # has its own link, and the node's devices exchange in parallel.
    return sent / link.bandwidth + calls * (layout.k - 1) * link.latency, sent


def predict(
    layout: Layout,
    net: NetworkBytes,
    cluster: Cluster,
    batch: int,
    algorithm: str = "ring",
    overlap: str = "none",
) -> Prediction:
    """The step of `layout` on `cluster`, `batch` images per device."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
    check(layout, cluster, net)
    compute = batch / cluster.rate
    t_ar, ar_bytes, ar_link = allreduce_time(_sums(layout, net, cluster), cluster, algorithm)
    t_x, x_bytes = exchange(layout, net, cluster, batch)
    if overlap == "backward":
        step = compute / 3 + max(2 * compute / 3, t_ar) + t_x
    else:
        step = compute + t_ar + t_x
    parts = {"compute": compute, ar_link: t_ar, "exchange": t_x}
    return Prediction(layout, cluster.devices, batch, compute, t_ar, t_x, step, ar_bytes, x_bytes,
                      bound=max(parts, key=parts.get))  # fmt: skip


def check(layout: Layout, cluster: Cluster, net: NetworkBytes) -> None:
    """ValueError naming what does not fit: the variant, the devices, the nodes."""
    if layout.kind == "towers" and net.variant != "paper":
        raise ValueError("the towers layout is the 2012 network's: variant paper")
    if layout.kind == "hybrid" and net.variant != "owt":
        raise ValueError("the 2014 hybrid is the one-tower network's: variant owt")
    if layout.kind != "dp" and layout.k < 2:
        raise ValueError(f"{layout.kind} needs k >= 2 devices per replica")
    if layout.kind == "towers" and layout.k != 2:
        raise ValueError("the towers layout has k = 2 devices per replica")
    if layout.across_nodes:
        if cluster.devices_per_node != 1 and cluster.nodes % layout.k:
            raise ValueError(f"{layout.k} nodes per replica do not divide {cluster.nodes} nodes")
        if cluster.nodes < layout.k:
            raise ValueError(f"{layout.k} nodes per replica need {layout.k} nodes")
    elif cluster.devices_per_node % layout.k:
        raise ValueError(f"{layout.k} devices per replica do not divide a node's "
                         f"{cluster.devices_per_node}")  # fmt: skip


def layouts(cluster: Cluster, net: NetworkBytes) -> list[Layout]:
    """Every layout the planner compares for `net`'s variant on `cluster`."""
    found = [Layout("dp")]
    p = cluster.devices_per_node
    if net.variant == "paper":
        if p % 2 == 0:
            found.append(Layout("towers", 2))
        if cluster.nodes % 2 == 0:
            found.append(Layout("towers", 2, across_nodes=True))  # the paper's split over a NIC
    else:
        found += [Layout("hybrid", k) for k in (2, 4, 8, 16) if k <= p and p % k == 0]
        found += [Layout("hybrid", k, across_nodes=True) for k in (2, 4, 8)
                  if p == 1 and k <= cluster.nodes and cluster.nodes % k == 0]  # fmt: skip
    return found
