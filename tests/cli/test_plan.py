"""alexnet-plan: the planner's command."""

import json

from alexnet_dist.cli import plan


def test_the_table_for_a_profile(capsys):
    assert plan.main(["--profile", "dgx1-p100", "--devices", "2", "8"]) == 0
    out = capsys.readouterr().out
    assert out.count("recommended on") == 2
    assert "dgx1-p100: 8 devices, owt x1 at 224px, 512 images per device" in out
    assert "measured data parallel: 17,822 images/s" in out


def test_overrides_json_and_the_plot(capsys, tmp_path):
    png = tmp_path / "p.png"
    args = ["--profile", "dgx1-p100", "--devices", "16", "--inter-bandwidth", "1gbit",
            "--algorithm", "hierarchical", "--json", "--plot", str(png)]  # fmt: skip
    assert plan.main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[0] == "{"]
    assert {r["devices"] for r in rows} == {16}
    assert sum(r["recommended"] for r in rows) == 1
    dp = next(r for r in rows if r["layout"] == "data parallel")
    assert dp["bound"] == "all-reduce (between nodes)"  # 4 x 1 Gbit/s per node
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_different_workload_asks_for_its_rate(capsys):
    assert plan.main(["--profile", "dgx1-p100", "--variant", "paper", "--batch", "128"]) == 0
    assert "pass --rate" in capsys.readouterr().err
    assert plan.main(["--profile", "dgx1-p100", "--variant", "paper", "--batch", "128",
                      "--rate", "3100"]) == 0  # fmt: skip
    assert "pass --rate" not in capsys.readouterr().err


def test_bad_input_is_named(capsys, tmp_path):
    assert plan.main(["--profile", "nowhere"]) == 2
    assert "no profile 'nowhere'" in capsys.readouterr().err
    assert plan.main(["--profile", "dgx1-p100", "--devices", "12"]) == 2
    assert "12 devices are not whole nodes of 8" in capsys.readouterr().err
    assert plan.main(["--profile", "dgx1-p100", "--intra-bandwidth", "lots"]) == 2
    assert "--intra-bandwidth: 'lots'" in capsys.readouterr().err


def test_the_dgx1_table_is_reproduced_from_one_gpu_and_the_link_figures(capsys):
    """The profile's published 2, 4 and 8-GPU figures (TensorFlow's 2017 benchmarks), next
    to the prediction from its 1-GPU figure and NVLink's specification: within 20 %."""
    assert plan.main(["--profile", "dgx1-p100", "--devices", "2", "4", "8", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[0] == "{"]
    compared = {r["devices"]: r for r in rows if r["measured_images_per_s"] is not None}
    assert sorted(compared) == [2, 4, 8]
    for n, r in compared.items():
        assert r["layout"] == "data parallel"
        assert abs(r["images_per_s"] / r["measured_images_per_s"] - 1) < 0.2, (n, r)
    # Another workload's prediction is not set against the profile's measurements.
    assert plan.main(["--profile", "dgx1-p100", "--devices", "8", "--rate", "2000", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[0] == "{"]
    assert all(r["measured_images_per_s"] is None for r in rows)
