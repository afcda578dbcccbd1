"""What a run logs: TensorBoard events (read back with TensorBoard's own reader) and
metrics.jsonl, of the session's tiny run (tests/conftest.py)."""

import glob
import json

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from alexnet_dist.training.summaries import Meter

pytestmark = pytest.mark.slow  # the session's tiny run


def test_tensorboard_holds_the_runs_scalars_images_hparams_and_profile(tiny_run):
    # Read back with TensorBoard's own reader.
    run_dir, _, _ = tiny_run
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


def test_metrics_jsonl_has_every_logged_step_and_evaluation(tiny_run):
    run_dir, _, _ = tiny_run
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val_lines = [m for m in lines if m["split"] == "val"]
    assert [m["step"] for m in val_lines] == [10, 20]
    assert set(val_lines[0]) == {"split", "step", "loss", "top1", "top5"}
    train_lines = [m for m in lines if m["split"] == "train"]
    assert [m["step"] for m in train_lines] == list(range(2, 21, 2))
    assert all(0 <= m["data_wait"] < m["step_time"] for m in train_lines)


def test_meter_sums_and_rates():
    meter = Meter()
    meter.add({"loss_sum": 6.0, "top1": 1.0, "top5": 3.0, "count": 4.0}, data_wait=0.5)
    meter.add({"loss_sum": 2.0, "top1": 1.0, "top5": 1.0, "count": 4.0}, data_wait=0.0)
    result = meter.result()
    assert result["loss"] == pytest.approx(1.0)
    assert (result["top1"], result["top5"]) == (pytest.approx(0.25), pytest.approx(0.5))
    assert result["images_per_sec"] > 0 and result["data_wait"] == pytest.approx(0.25)
