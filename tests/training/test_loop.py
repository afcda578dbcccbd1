"""Training through the real Hydra entry point on the tiny debug config."""

import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_module
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorflow.python.framework import config as tf_config  # no public switch back

from alexnet_dist.cli.train import run
from tests.helpers import run_cli, train_in_process

pytestmark = pytest.mark.slow


@pytest.fixture
def deterministic_ops():
    """trainer.deterministic_ops=true in this process, and off again afterwards: TensorFlow's
    switch is for the whole process, and XLA has no deterministic max-pool gradient."""
    yield ["trainer.deterministic_ops=true"]
    tf_config.disable_op_determinism()


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, deterministic_ops):
    det = [*deterministic_ops, "trainer.checkpoint_every_steps=100"]
    # Stopped after 6 steps (mid-epoch), then resumed to 14 (across the epoch end).
    first = train_in_process(tmp_path / "resumed", "trainer.max_steps=6", *det)
    assert first["step"] == 6
    resumed = train_in_process(tmp_path / "resumed", "trainer.max_steps=14", *det)
    straight = train_in_process(tmp_path / "straight", "trainer.max_steps=14", *det)
    assert resumed["step"] == straight["step"] == 14

    a = tf.train.load_checkpoint(str(tmp_path / "resumed" / "checkpoints" / "ckpt-14"))
    b = tf.train.load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "ckpt-14"))
    names = sorted(a.get_variable_to_shape_map())
    assert names == sorted(b.get_variable_to_shape_map())
    assert sum(n.startswith("model/conv") and "kernel" in n for n in names) == 10
    assert sum(n.startswith("model/fc") and "kernel" in n for n in names) == 5
    assert sum(n.startswith("rng_states/") for n in names) == 4  # one per dropout layer
    assert sum(n.startswith("optimizer/_variables/") for n in names) == 30  # momenta
    for name in names:
        if name.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter")):
            continue
        np.testing.assert_allclose(a.get_tensor(name), b.get_tensor(name), rtol=1e-6, err_msg=name)
    assert resumed["val"]["top1"] == pytest.approx(straight["val"]["top1"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", f"hydra.run.dir={run_dir}", "optim.lr=1e6",
         "trainer.checkpoint_every_steps=1", "trainer.max_steps=20"],
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    message = result.stderr + result.stdout
    assert re.search(
        r"alexnet-train: the training (loss is nan|gradients are not finite) at step", message
    )
    stopped = int(message.split(" at step ")[1].split(";")[0])
    ckpts = sorted(glob.glob(str(run_dir / "checkpoints" / "ckpt-*.index")))
    assert ckpts and ckpts[-1].endswith(f"ckpt-{stopped - 1}.index")
    reader = tf.train.load_checkpoint(ckpts[-1][: -len(".index")])
    kernel = reader.get_tensor("model/conv1_a/_kernel/.ATTRIBUTES/VARIABLE_VALUE")
    assert np.all(np.isfinite(kernel))


def test_plateau_schedule_fp16_loss_scaling_and_the_best_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    # min_delta 1: no evaluation after the first counts as an improvement, so the
    # plateau rule divides the rate after evaluations 2 and 3 (patience 1).
    result = train_in_process(
        run_dir, "precision=mixed_float16", "optim.schedule=plateau",
        "optim.plateau_min_delta=1.0", "optim.label_smoothing=0.1", "trainer.epochs=3",
        "trainer.keep_checkpoints=1",
    )  # fmt: skip
    assert result["step"] == 30
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lr = {m["step"]: m["lr"] for m in lines if m["split"] == "train"}
    base = lr[2]
    assert all(lr[s] == pytest.approx(base) for s in range(2, 21, 2))
    assert all(lr[s] == pytest.approx(base / 10) for s in range(22, 31, 2))
    train = [m for m in lines if m["split"] == "train"]
    assert all(m["loss_scale"] >= 1 and 0 <= m["skipped_steps"] <= 2 for m in train)

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "ckpt-30"))
    assert reader.get_tensor("plateau/scale/.ATTRIBUTES/VARIABLE_VALUE") == pytest.approx(0.01)
    assert reader.get_tensor("plateau/drops/.ATTRIBUTES/VARIABLE_VALUE") == 2
    assert reader.get_tensor("loss_scale/scale/.ATTRIBUTES/VARIABLE_VALUE") >= 1

    # keep_checkpoints=1 rotated the others away; the best one stays.
    assert [os.path.basename(p) for p in result["checkpoints"]] == ["ckpt-30"]
    val = [m for m in lines if m["split"] == "val"]
    best = json.loads((run_dir / "checkpoints" / "best" / "best.json").read_text())
    first_best = max(val, key=lambda m: (m["top1"], -m["step"]))
    assert best["top1"] == first_best["top1"] and best["step"] == first_best["step"]
    assert result["best"].endswith(f"best-{best['step']}")
    assert os.path.exists(result["best"] + ".index")

    acc = EventAccumulator(str(run_dir / "tensorboard" / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    assert {"loss_scale", "skipped_steps"} <= set(acc.Tags()["tensors"])


def test_paper_imagenet_recipe_runs_end_to_end_on_small_records(tmp_path, shapes_records):
    records, cache = shapes_records
    # The overlay as users run it, shrunk: 10-crop evaluation, PCA lighting, plateau
    # schedule and paper init on the session's small records.
    with initialize_config_module("alexnet_dist.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=paper_imagenet", f"data.dir={records}", "model.width=0.125",
                "model.image_size=67", "data.resize_size=72", "data.global_batch_size=16",
                "data.eval_batch_size=10", "trainer.epochs=2", "trainer.log_every_steps=1",
            ],
        )  # fmt: skip
    result = run(cfg, str(tmp_path / "run"))
    assert result["step"] == 2 * (120 // 16)
    assert 0.0 <= result["val"]["top1"] <= 1.0 and np.isfinite(result["val"]["loss"])
    reader = tf.train.load_checkpoint(result["checkpoints"][-1])
    assert reader.get_tensor("plateau/best_error/.ATTRIBUTES/VARIABLE_VALUE") <= 1.0
