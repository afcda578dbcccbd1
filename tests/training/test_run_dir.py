"""The run directory as later commands read it: config, class names, checkpoints, model."""

import pytest

from alexnet_dist.config import Config
from alexnet_dist.training.run_dir import (
    RunError,
    find_checkpoint,
    load_config,
    load_model,
    read_labels,
    write_run_info,
)

pytestmark = pytest.mark.slow  # the session's tiny run


def test_what_a_run_leaves_reads_back(tiny_run):
    run_dir = str(tiny_run[0])
    cfg = load_config(run_dir)
    assert isinstance(cfg, Config) and (cfg.model.width, cfg.model.image_size) == (0.125, 67)
    labels = read_labels(run_dir)
    assert len(labels) == 10 and labels == sorted(labels)
    assert find_checkpoint(run_dir, "latest").endswith("checkpoints/ckpt-20")
    assert "/checkpoints/best/best-" in find_checkpoint(run_dir)  # "best" by default
    path = find_checkpoint(run_dir, "latest")
    assert find_checkpoint(run_dir, path) == path
    model = load_model(cfg, path, len(labels))
    assert model.count_params() == 325_114 and model.dtype_policy.name == "float32"


def test_write_run_info_round_trips(tmp_path):
    cfg = Config()
    cfg.model.width = 0.25
    write_run_info(str(tmp_path), cfg, ["cat", "dog"])
    assert load_config(str(tmp_path)).model.width == 0.25
    assert read_labels(str(tmp_path)) == ["cat", "dog"]


def test_what_is_missing_is_named(tiny_run, tmp_path):
    with pytest.raises(RunError, match="is not an alexnet-train run directory"):
        load_config(str(tmp_path))
    with pytest.raises(RunError, match="labels.txt not found"):
        read_labels(str(tmp_path))
    with pytest.raises(RunError, match=f"no checkpoint in {tmp_path}/checkpoints"):
        find_checkpoint(str(tmp_path), "latest")
    with pytest.raises(RunError, match="x.index does not exist"):
        find_checkpoint(str(tmp_path), str(tmp_path / "x"))
    cfg = load_config(str(tiny_run[0]))
    with pytest.raises(RunError, match="does not fit the run's model"):
        load_model(cfg, find_checkpoint(str(tiny_run[0]), "latest"), num_classes=7)
