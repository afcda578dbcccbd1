"""Training through the real Hydra entry point on the tiny debug config."""

import glob
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_module
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from alexnet_dist.train import run
from alexnet_dist.training.preemption import EXIT_PREEMPTED
from tests.helpers import REPO, run_cli, signal_when

pytestmark = pytest.mark.slow


def tiny(cache, *overrides):
    # debug=tiny renders 72px images, 16 train / 4 val per class: 10 steps of 16 per epoch.
    return ["debug=tiny", f"data.cache_dir={cache}", *overrides]


def train_in_process(run_dir, cache, *overrides):
    with initialize_config_module("alexnet_dist.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=tiny(cache, *overrides))
    return run(cfg, str(run_dir))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_entry_point_trains_and_writes_checkpoints_and_tensorboard(tmp_path, cache):
    run_dir = tmp_path / "run"
    result = run_cli(
        ["-m", "alexnet_dist.train", *tiny(cache), f"hydra.run.dir={run_dir}",
         "trainer.profile_steps=[3,4]"],
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert f"run directory  {run_dir}" in out
    assert f"tensorboard --logdir {run_dir}/tensorboard" in out
    assert "finished at step 20" in out
    assert "img/s" in out  # console progress

    ckpts = sorted(glob.glob(str(run_dir / "checkpoints" / "ckpt-*.index")))
    assert [os.path.basename(c) for c in ckpts] == [
        "ckpt-10.index",
        "ckpt-15.index",
        "ckpt-20.index",
    ]
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "ckpt-20"))
    names = reader.get_variable_to_shape_map()
    assert "model/conv1_a/_kernel/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert any("optimizer" in n and "iteration" in n for n in names)
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert (run_dir / "train.log").read_text().count(" validation: loss") == 2

    tags = {}
    for split in ("train", "val"):
        acc = EventAccumulator(str(run_dir / "tensorboard" / split), size_guidance={"tensors": 0})
        acc.Reload()
        tags[split] = set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])
        if split == "val":
            steps = [e.step for e in acc.Tensors("top1")]
            assert steps == [10, 20]
    assert {"loss", "top1", "top5", "lr", "images_per_sec", "step_time", "data_wait"} <= tags[
        "train"
    ]
    assert {"loss", "top1", "top5", "conv1_filters"} <= tags["val"]
    assert "augmented_inputs" in tags["train"]
    images = {}
    for split, tag in (("train", "augmented_inputs"), ("val", "conv1_filters")):
        acc = EventAccumulator(str(run_dir / "tensorboard" / split), size_guidance={"tensors": 0})
        acc.Reload()
        events = acc.Tensors(tag)
        png = tf.make_ndarray(events[-1].tensor_proto)[2]  # width, height, PNG bytes
        images[tag] = ([e.step for e in events], tf.io.decode_png(png).shape)
    # Each epoch's first batch: 16 crops of 67 px in a 4 x 4 grid with 1 px borders.
    assert images["augmented_inputs"] == ([1, 11], (4 * 68 + 1, 4 * 68 + 1, 3))
    # width 0.125: 6 conv1 filters of 11 x 11 per tower, one row of 16 per tower, a above b.
    assert images["conv1_filters"] == ([10, 20], (2 * 13, 16 * 12 + 1, 3))
    acc = EventAccumulator(str(run_dir / "tensorboard" / "hparams"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["optim.lr"].number_value == pytest.approx(0.01)
    assert hparams["model.variant"].string_value == "paper"
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"top1", "top5", "loss"}
    assert glob.glob(str(run_dir / "tensorboard" / "plugins" / "profile" / "*" / "*.xplane.pb"))

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val_lines = [m for m in lines if m["split"] == "val"]
    assert [m["step"] for m in val_lines] == [10, 20]
    assert set(val_lines[0]) == {"split", "step", "loss", "top1", "top5"}
    train_lines = [m for m in lines if m["split"] == "train"]
    assert [m["step"] for m in train_lines] == list(range(2, 21, 2))
    assert all(0 <= m["data_wait"] < m["step_time"] for m in train_lines)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, cache):
    det = ["trainer.deterministic_ops=true", "trainer.checkpoint_every_steps=100"]
    # Stopped after 6 steps (mid-epoch), then resumed to 14 (across the epoch end).
    first = train_in_process(tmp_path / "resumed", cache, "trainer.max_steps=6", *det)
    assert first["step"] == 6
    resumed = train_in_process(tmp_path / "resumed", cache, "trainer.max_steps=14", *det)
    straight = train_in_process(tmp_path / "straight", cache, "trainer.max_steps=14", *det)
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


def test_tfrecord_source_reads_converted_records(tmp_path, cache, shapes_records):
    records, _ = shapes_records
    result = train_in_process(
        tmp_path / "run", cache, "data=tfrecord", f"data.dir={records}", "data.resize_size=72",
        "data.std=[58.4,57.1,57.4]", "trainer.max_steps=3",
    )  # fmt: skip
    assert result["step"] == 3
    assert 0.0 <= result["val"]["top1"] <= 1.0


def test_missing_records_directory_is_named(tmp_path):
    result = run_cli(
        ["-m", "alexnet_dist.train", "debug=tiny", "data=tfrecord", f"data.dir={tmp_path}/nope",
         "data.resize_size=72", f"hydra.run.dir={tmp_path}/run"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"data.dir='{tmp_path}/nope' does not exist" in result.stderr


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, cache):
    run_dir = tmp_path / "run"
    result = run_cli(
        ["-m", "alexnet_dist.train", *tiny(cache), f"hydra.run.dir={run_dir}", "optim.lr=1e6",
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


def test_sigterm_saves_a_checkpoint_and_exits_for_requeue(tmp_path, cache):
    run_dir = tmp_path / "run"
    args = ["-m", "alexnet_dist.train", *tiny(cache), f"hydra.run.dir={run_dir}",
            "trainer.checkpoint_every_steps=100000", "trainer.log_every_steps=1"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, *args, "trainer.max_steps=100000", "trainer.epochs=100000"],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out = signal_when(proc, " step 3/", signal.SIGTERM)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "SIGTERM received: stopped at step" in out
    stopped = int(out.split("stopped at step ")[1].split()[0])
    assert (run_dir / "checkpoints" / f"ckpt-{stopped}.index").exists()

    again = run_cli([*args, f"trainer.max_steps={stopped + 2}"], timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"ckpt-{stopped}" in again.stdout and "resumed from" in again.stdout
    assert f"finished at step {stopped + 2}" in again.stdout


def test_plateau_schedule_fp16_loss_scaling_and_the_best_checkpoint(tmp_path, cache):
    run_dir = tmp_path / "run"
    # min_delta 1: no evaluation after the first counts as an improvement, so the
    # plateau rule divides the rate after evaluations 2 and 3 (patience 1).
    result = train_in_process(
        run_dir, cache, "precision=mixed_float16", "optim.schedule=plateau",
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


def test_unreadable_newest_checkpoint_falls_back_to_the_one_before(tmp_path, cache):
    run_dir = tmp_path / "run"
    train_in_process(run_dir, cache)  # ckpt-10, ckpt-15, ckpt-20
    ckpts = run_dir / "checkpoints"
    (data,) = glob.glob(str(ckpts / "ckpt-20.data-*"))
    with open(data, "r+b") as f:  # a truncated copy
        f.truncate(os.path.getsize(data) // 2)

    result = run_cli(
        ["-m", "alexnet_dist.train", *tiny(cache), f"hydra.run.dir={run_dir}", "trainer.epochs=3"],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert f"checkpoint {ckpts}/ckpt-20 is unreadable" in out
    assert f"resumed from {ckpts}/ckpt-15" in out
    assert "finished at step 30" in result.stdout
    assert (ckpts / "unreadable" / "ckpt-20.index").exists()  # set aside, not deleted
    assert os.path.getsize(ckpts / "unreadable" / os.path.basename(data)) > 0
    assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-30")
    reader = tf.train.load_checkpoint(str(ckpts / "ckpt-20"))  # written again, readable
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2


def test_no_readable_checkpoint_is_an_error_naming_them(tmp_path, cache):
    run_dir = tmp_path / "run"
    train_in_process(run_dir, cache, "trainer.max_steps=5")  # ckpt-5 only
    for data in glob.glob(str(run_dir / "checkpoints" / "ckpt-5.data-*")):
        with open(data, "r+b") as f:
            f.truncate(10)
    result = run_cli(
        ["-m", "alexnet_dist.train", *tiny(cache), f"hydra.run.dir={run_dir}"], timeout=300
    )
    assert result.returncode == 1
    assert f"no checkpoint in {run_dir}/checkpoints can be restored (tried ckpt-5;" in (
        result.stderr
    )
    assert (run_dir / "checkpoints" / "ckpt-5.index").exists()  # nothing deleted


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


@pytest.mark.parametrize("damage, reason", [("truncate", "truncated"), ("flip", "corrupted")])
def test_damaged_shard_is_named(tmp_path, shapes_records, damage, reason):
    import shutil

    records, _ = shapes_records
    copy = tmp_path / "records"
    shutil.copytree(records, copy)
    damaged = copy / "train-00002-of-00004.tfrecord"
    size = os.path.getsize(damaged)
    with open(damaged, "r+b") as f:
        if damage == "truncate":
            f.truncate(size // 2)
        else:  # one flipped byte inside a record: its checksum no longer matches
            f.seek(size // 3)
            byte = f.read(1)
            f.seek(size // 3)
            f.write(bytes([byte[0] ^ 0xFF]))
    result = run_cli(
        ["-m", "alexnet_dist.train", "debug=tiny", "data=tfrecord", f"data.dir={copy}",
         "data.resize_size=72", f"hydra.run.dir={tmp_path}/run"],
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"alexnet-train: error: shard {damaged} is damaged ({reason} record at" in (
        result.stderr
    )


def test_tfds_source_trains_on_a_mocked_dataset(tmp_path, cache):
    import tensorflow_datasets as tfds

    # mock_data generates random images of random sizes for imagenette's features
    # and makes download_and_prepare a no-op: the TFDS path without the download.
    with tfds.testing.mock_data(num_examples=40):
        result = train_in_process(
            tmp_path / "run", cache, "data=tfds", "data.name=imagenette",
            "data.resize_size=72", "data.std=[58.4,57.1,57.4]", "data.eval_crops=10",
            "data.train_crop=inception", "data.global_batch_size=8", "data.eval_batch_size=8",
        )  # fmt: skip
    assert result["step"] == 2 * 5  # 40 images / 8, two epochs
    assert 0.0 <= result["val"]["top1"] <= 1.0
    labels = (tmp_path / "run" / "labels.txt").read_text().split()
    assert len(labels) == 10 and labels[0] == "n01440764"  # imagenette's WNIDs


def test_synthetic_source_needs_no_files(tmp_path, cache):
    result = train_in_process(
        tmp_path / "run", cache, "data=synthetic", "data.synthetic.num_classes=7",
        "data.synthetic.train_examples=64", "data.synthetic.val_examples=40",
        "data.resize_size=72", "data.eval_batch_size=20", "data.std=[1,1,1]",
    )  # fmt: skip
    assert result["step"] == 2 * 4  # 64 / 16 per epoch
    lines = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert {m["split"] for m in lines} == {"train", "val"}
    assert len((tmp_path / "run" / "labels.txt").read_text().split()) == 7
