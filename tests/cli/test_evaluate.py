"""`alexnet-eval`: the paper's error rates of a checkpoint or an exported model."""

import json
import os

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # commands in processes of their own, on the session's tiny run


def test_the_last_checkpoint_evaluates_to_the_runs_own_validation(tiny_run):
    run_dir, _, _ = tiny_run
    out = run_cli(["-m", "alexnet_dist.cli.evaluate", str(run_dir), "--checkpoint", "latest",
                   "--json"])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| model | crops | top-1 error | top-5 error | images |" in out.stdout
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(r["crops"], r["count"]) for r in rows] == [(1, 40), (10, 40)]
    centre = rows[0]
    assert centre["model"].endswith("ckpt-20")
    val = json.loads((run_dir / "result.json").read_text())["val"]
    assert centre["top1"] == pytest.approx(val["top1"])
    assert centre["top5"] == pytest.approx(val["top5"])
    assert f"{100 * (1 - centre['top1']):.2f} %" in out.stdout


def test_the_exported_model_evaluates_to_its_checkpoints_figures(exported, tiny_run):
    folder, _, _ = exported
    run_dir, _, dataset = tiny_run
    out = run_cli(["-m", "alexnet_dist.cli.evaluate", "--saved-model", str(folder),
                   "--data-dir", os.path.join(dataset, "records"), "--json"])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(out.stdout.strip().splitlines()[-1])
    val = json.loads((run_dir / "result.json").read_text())["val"]
    assert row["count"] == 40 and row["crops"] == 1
    assert row["top1"] == pytest.approx(val["top1"])
    assert row["top5"] == pytest.approx(val["top5"])


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    out = run_cli(["-m", "alexnet_dist.cli.evaluate", str(tmp_path)])
    assert out.returncode == 1
    assert f"{tmp_path}/config.yaml not found" in out.stderr
