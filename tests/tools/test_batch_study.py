"""tools/batch_study.py: every optimizer at every batch trained for the same epochs, the table,
results.json and the plot; a finished run is read back, not trained again."""

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.helpers import REPO

pytestmark = pytest.mark.slow

STUDY = os.path.join(REPO, "tools", "batch_study.py")
TINY = ["--batches", "8", "32", "--optimizers", "sgd", "lars", "--epochs", "1",
        "--train-per-class", "8", "--val-per-class", "2", "--eval-batch", "10"]  # fmt: skip


def _study(*args):
    done = subprocess.run([sys.executable, STUDY, *TINY, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_optimizer_at_every_batch_for_the_same_epochs(tmp_path):
    out = _study("--out", str(tmp_path / "runs"), "--plot", str(tmp_path / "study.png"))
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert results["epochs"] == 1 and results["train_images"] == 80
    for optimizer in ("sgd", "lars"):
        points = results["results"][optimizer]
        # One epoch of 80 images: 10 steps of 8, 2 of 32 (the last partial batch dropped).
        assert {b: p["step"] for b, p in points.items()} == {"8": 10, "32": 2}
        assert all(0.0 <= p["top1"] <= 1.0 for p in points.values())
        config = (tmp_path / "runs" / f"{optimizer}-32" / "config.yaml").read_text()
        assert f"name: {optimizer}" in config and "batch_norm: true" in config
    assert "validation top-1 after 1 epochs of 80 images" in out
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Run again: the finished runs are read back, nothing is trained.
    again = _study("--out", str(tmp_path / "runs"))
    assert " s\n" not in again and again.splitlines()[-2:] == out.splitlines()[-3:-1]


def test_a_batch_larger_than_the_dataset_is_refused(tmp_path):
    done = subprocess.run([sys.executable, STUDY, "--batches", "4096", "--train-per-class", "100",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2 and "gives 1000 images, fewer than the batch of 4096" in done.stderr


def test_rate_factors_train_each_point_at_each_and_keep_the_best(tmp_path):
    out = subprocess.run(
        [sys.executable, STUDY, "--batches", "32", "--optimizers", "lars", "--epochs", "1",
         "--train-per-class", "8", "--val-per-class", "2", "--eval-batch", "10",
         "--lr-factors", "0.5", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    # The factor-1 run keeps the plain name (a study without factors reads it back).
    lrs = {d: OmegaConf.load(tmp_path / d / "config.yaml").optim.lr
           for d in ("lars-32", "lars-32-lr0.5x")}  # fmt: skip
    assert lrs["lars-32-lr0.5x"] == pytest.approx(0.5 * lrs["lars-32"])
    results = json.loads((tmp_path / "results.json").read_text())
    runs = results["runs"]["lars"]["32"]
    assert [r["lr_factor"] for r in runs] == [0.5, 1.0]
    assert results["results"]["lars"]["32"]["top1"] == max(r["top1"] for r in runs)
    assert "the best of the rate factors" in out.stdout and "lars 32 x0.5" in out.stdout
