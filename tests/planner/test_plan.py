"""planner/plan.py: the layouts compared at a size, and the published DGX-1 table."""

import pytest

from alexnet_dist.planner import profiles
from alexnet_dist.planner.plan import Workload, cluster, plan, table

DGX1 = profiles.load("dgx1-p100")
TF_BENCHMARKS = Workload("owt", 1.0, 224, 1000, batch=512)


def test_a_cluster_is_part_of_one_node_or_whole_nodes():
    assert (cluster(DGX1, 4, 1.0).devices_per_node, cluster(DGX1, 4, 1.0).nodes) == (4, 1)
    assert (cluster(DGX1, 64, 1.0).devices_per_node, cluster(DGX1, 64, 1.0).nodes) == (8, 8)
    with pytest.raises(ValueError, match="whole nodes of 8"):
        cluster(DGX1, 12, 1.0)


def test_the_published_dgx1_table_within_20_percent_with_nothing_fitted():
    """TensorFlow's benchmarks (2017): AlexNet, batch 512 per P100, replicated with NCCL.
    Predicted from the 1-GPU figure and NVLink's specification alone (the profile)."""
    published = DGX1.measured["dp"]
    for devices in (2, 4, 8):
        dp = next(x for x in plan(DGX1, TF_BENCHMARKS, devices, published[1]).predictions
                  if x.layout.kind == "dp")  # fmt: skip
        error = dp.images_per_s / published[devices] - 1
        assert abs(error) < 0.20, f"{devices} GPUs: {dp.images_per_s:.0f} vs {published[devices]}"


def test_the_recommendation_is_the_fastest_layout():
    p = plan(DGX1, TF_BENCHMARKS, 8, 2987)
    assert p.best.images_per_s == max(x.images_per_s for x in p.predictions)
    text = table(p)
    assert text.splitlines()[-1].startswith(f"recommended on 8 devices: {p.best.layout.name}")
    assert "data parallel" in text and "2014 hybrid, 8 devices per replica" in text


def test_on_a_slow_network_the_hybrid_beats_data_parallelism():
    slow = profiles.parse({
        "devices_per_node": 1, "intra": {"bandwidth": "10GB/s", "latency": "1us"},
        "inter": {"bandwidth": "1gbit", "latency": "50us"},
    })  # fmt: skip
    p = plan(slow, Workload("owt", 1.0, 224, 1000, batch=128), 2, rate=500)
    by_kind = {x.layout.kind: x for x in p.predictions}
    assert p.best.layout.kind == "hybrid"
    assert by_kind["dp"].bound == "all-reduce (between nodes)"
    # 244 MB through a 125 MB/s NIC, against the conv layers' 10 MB and the maps.
    assert by_kind["dp"].images_per_s < 0.25 * by_kind["hybrid"].images_per_s


def test_workload_differences_from_a_profiles_rate():
    assert TF_BENCHMARKS.differs_from(DGX1.rate_workload) == []
    other = Workload("paper", 1.0, 227, 1000, batch=128)
    assert set(other.differs_from(DGX1.rate_workload)) == {"variant", "batch", "image_size"}
