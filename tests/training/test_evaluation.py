"""Evaluation: a checkpoint's and an exported model's top-1 and top-5 on a split, every image
counted once."""

import json
import os

import pytest

from alexnet_dist.training.evaluation import evaluate_checkpoint, evaluate_saved_model
from alexnet_dist.training.run_dir import find_checkpoint

pytestmark = pytest.mark.slow  # the session's tiny run and its export


def test_a_checkpoint_evaluates_to_what_its_run_measured(tiny_run):
    run_dir, _, _ = tiny_run
    checkpoint = find_checkpoint(str(run_dir), "latest")
    metrics = evaluate_checkpoint(str(run_dir), checkpoint, None, None, crops=1, batch=7)
    val = json.loads((run_dir / "result.json").read_text())["val"]
    assert metrics["count"] == 40  # 7 does not divide 40: the last batch counts too
    for key in ("loss", "top1", "top5"):
        assert metrics[key] == pytest.approx(val[key], rel=1e-5), key
    ten = evaluate_checkpoint(str(run_dir), checkpoint, None, None, crops=10, batch=20)
    assert ten["count"] == 40 and 0 <= ten["top1"] <= 1


def test_a_saved_model_evaluates_on_records(exported, tiny_run):
    folder, _, _ = exported
    records = os.path.join(tiny_run[2], "records")
    metrics = evaluate_saved_model(str(folder), records, "val", batch=16)
    val = json.loads((tiny_run[0] / "result.json").read_text())["val"]
    assert metrics["count"] == 40
    assert metrics["top1"] == pytest.approx(val["top1"])
