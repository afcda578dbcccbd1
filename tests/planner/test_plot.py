"""planner/plot.py: the plan drawn to a PNG."""

from alexnet_dist.planner import profiles
from alexnet_dist.planner.plan import Workload, plan
from alexnet_dist.planner.plot import device_counts, plot


def test_device_counts_stay_whole_nodes_beyond_one():
    assert device_counts(8) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert device_counts(8, largest=8) == [1, 2, 4, 8]
    assert device_counts(6, largest=64) == [1, 2, 4]  # 8, 16, ... are not whole nodes of 6


def test_the_plot_is_a_png_with_the_measured_points(tmp_path):
    dgx1 = profiles.load("dgx1-p100")
    plans = [plan(dgx1, Workload(batch=512), n, 2987) for n in device_counts(8, largest=64)]
    path = tmp_path / "plan.png"
    plot(plans, str(path), "dgx1-p100", dgx1.measured)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
