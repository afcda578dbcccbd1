"""planner/step_time.py: the step model's arithmetic against hand-computed cases."""

import dataclasses

import pytest

from alexnet_dist.planner.network import NetworkBytes
from alexnet_dist.planner.step_time import (
    HYBRID_COLLECTIVES,
    TOWER_COLLECTIVES,
    Cluster,
    Layout,
    Link,
    layouts,
    predict,
)

GB = 1e9
# A network of round numbers: 800 MB of gradients, 100 MB of them the convolutions'.
OWT = NetworkBytes("owt", 1.0, 224, 1000, parameters=200_000_000, gradient_bytes=800_000_000,
                   conv_gradient_bytes=100_000_000, tower_gradient_bytes=(0, 0),
                   crosslink_bytes_per_image=0, activation_bytes=4)  # fmt: skip
PAPER = dataclasses.replace(OWT, variant="paper", tower_gradient_bytes=(500_000_000, 300_000_000),
                            crosslink_bytes_per_image=100_000)  # fmt: skip


class _Exchange(NetworkBytes):
    def hybrid_exchange_bytes_per_image(self, k):
        return 50_000 * (k - 1)


HYBRID = _Exchange(**dataclasses.asdict(OWT))
NODE = Link(20 * GB, 5e-6)
NET = Link(10 * GB, 20e-6)


def _cluster(per_node=8, nodes=1, nics=1, rate=1000.0):
    return Cluster(per_node, nodes, rate, NODE, NET, nics)


def test_one_device_is_its_compute():
    p = predict(Layout("dp"), OWT, _cluster(1), batch=500)
    assert p.step == p.compute == 0.5 and p.allreduce == p.exchange == 0
    assert p.images_per_s == 1000 and p.efficiency == 1 and p.bound == "compute"


def test_data_parallel_in_one_node_is_a_ring_over_the_node_links():
    p = predict(Layout("dp"), OWT, _cluster(8), batch=500)
    # 2 (P - 1) / P of 800 MB over a 20 GB/s link, and 2 (P - 1) hops of 5 us.
    assert p.allreduce == pytest.approx(2 * 7 / 8 * 0.8 / 20 + 14 * 5e-6)
    assert p.step == pytest.approx(0.5 + p.allreduce)
    assert p.images_per_s == pytest.approx(8 * 500 / p.step)
    assert p.allreduce_bytes == pytest.approx(1.4e9)


def test_data_parallel_over_nodes_flat_ring_and_hierarchical():
    c = _cluster(8, nodes=4, nics=2)  # 32 devices, each node 2 NICs of 10 GB/s
    flat = predict(Layout("dp"), OWT, c, batch=500)
    edge = 2 * 31 / 32 * 0.8e9
    # The ring leaves each node once each way: 2 (P - 1) / P S through its NICs.
    assert flat.allreduce == pytest.approx(edge / 20e9 + 62 * 20e-6)
    assert flat.bound == "compute"  # 500 ms of it against 78 ms
    fast = predict(Layout("dp"), OWT, _cluster(8, nodes=4, nics=2, rate=1e5), batch=500)
    assert fast.bound == "all-reduce (between nodes)"
    hier = predict(Layout("dp"), OWT, c, batch=500, algorithm="hierarchical")
    # Within the node: 2 (p - 1) / p S = 1.4 GB on a 20 GB/s link (70 ms); between the
    # 4 nodes: 2 (m - 1) / m S = 1.2 GB through 20 GB/s of NICs (60 ms): the node's links
    # bound it; hops 14 x 5 us + 6 x 20 us.
    assert hier.allreduce == pytest.approx(1.4e9 / 20e9 + 14 * 5e-6 + 6 * 20e-6)
    fast = predict(Layout("dp"), OWT, _cluster(8, nodes=4, nics=2, rate=1e5), batch=500,
                   algorithm="hierarchical")  # fmt: skip
    assert fast.bound == "all-reduce (within a node)"


def test_overlap_hides_the_all_reduce_behind_the_backward_pass():
    c = _cluster(8)
    none = predict(Layout("dp"), OWT, c, batch=500)
    hidden = predict(Layout("dp"), OWT, c, batch=500, overlap="backward")
    assert hidden.step == pytest.approx(0.5)  # 70 ms of all-reduce under 333 ms of backward
    assert none.step == pytest.approx(0.5 + none.allreduce)
    slow = predict(Layout("dp"), OWT, _cluster(8, rate=100_000), batch=500, overlap="backward")
    assert slow.step == pytest.approx(0.005 / 3 + slow.allreduce)  # longer than the backward


def test_towers_in_a_node_sum_each_tower_among_its_devices_and_exchange_maps():
    p = predict(Layout("towers", 2), PAPER, _cluster(8), batch=500)
    # Tower a's 500 MB over the 4 tower-a devices; each device's link carries its tower's.
    assert p.allreduce == pytest.approx(2 * 3 / 4 * 0.5 / 20 + 6 * 5e-6)
    # Each device sends 100 KB per image of its 500 over its link, in 8 collectives.
    assert p.exchange == pytest.approx(500 * 100_000 / 20e9 + TOWER_COLLECTIVES * 5e-6)
    assert p.exchange_bytes == 500 * 100_000


def test_towers_across_nodes_send_their_maps_through_the_nics():
    p = predict(Layout("towers", 2, across_nodes=True), PAPER, _cluster(1, nodes=2), batch=500)
    assert p.exchange == pytest.approx(500 * 100_000 / 10e9 + TOWER_COLLECTIVES * 20e-6)
    assert p.allreduce == 0  # one replica: nothing to sum


def test_the_hybrid_sums_conv_over_all_and_each_shard_over_its_peers():
    c = _cluster(8, nodes=2)  # 16 devices, k = 8: 2 replicas, shard j on one device a node
    p = predict(Layout("hybrid", 8), HYBRID, c, batch=500)
    conv_edge = 2 * 15 / 16 * 0.1e9  # ring over all 16, crossing each node's NIC once
    shard_edge = 2 * 1 / 2 * 0.7e9 / 8  # 8 shard groups of 2 devices, each leaves the node
    assert p.allreduce_bytes == pytest.approx(conv_edge + 8 * shard_edge)
    assert p.allreduce == pytest.approx((conv_edge + 8 * shard_edge) / 10e9 + 30 * 20e-6)
    assert p.exchange == pytest.approx(500 * 50_000 * 7 / 20e9 + HYBRID_COLLECTIVES * 7 * 5e-6)


def test_the_hybrid_over_ranks_on_two_nodes():
    p = predict(Layout("hybrid", 2, across_nodes=True), HYBRID, _cluster(1, nodes=2), batch=500)
    # Conv gradients over both nodes; each FC shard lives on one device (nothing to sum).
    assert p.allreduce == pytest.approx(0.1e9 / 10e9 + 2 * 20e-6)
    # Its 8 exchanges, and the gather of each rank's row count before the logits' all-to-all.
    assert p.exchange == pytest.approx(500 * 50_000 / 10e9 + (HYBRID_COLLECTIVES + 1) * 20e-6)


def test_the_layouts_compared_for_each_variant():
    names = [x.name for x in layouts(_cluster(8), OWT)]
    assert names == [
        "data parallel",
        "2014 hybrid, 2 devices per replica",
        "2014 hybrid, 4 devices per replica",
        "2014 hybrid, 8 devices per replica",
    ]
    assert [x.name for x in layouts(_cluster(1, nodes=2), OWT)] == [
        "data parallel",
        "2014 hybrid, 2 nodes per replica",
    ]
    assert [x.name for x in layouts(_cluster(2, nodes=2), PAPER)] == [
        "data parallel", "towers, 2 devices per replica", "towers, 2 nodes per replica",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "layout, net, message",
    [
        (Layout("towers", 2), OWT, "variant paper"),
        (Layout("hybrid", 2), PAPER, "variant owt"),
        (Layout("hybrid", 3), OWT, "do not divide"),
        (Layout("hybrid", 1), OWT, "k >= 2"),
    ],
)
def test_a_layout_that_does_not_fit_is_refused(layout, net, message):
    with pytest.raises(ValueError, match=message):
        predict(layout, net, _cluster(8), batch=10)


def test_unknown_algorithm_or_overlap():
    with pytest.raises(ValueError, match="algorithm"):
        predict(Layout("dp"), OWT, _cluster(8), 10, algorithm="tree")
    with pytest.raises(ValueError, match="overlap"):
        predict(Layout("dp"), OWT, _cluster(8), 10, overlap="full")
