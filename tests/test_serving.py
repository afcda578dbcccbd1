"""alexnet-eval, alexnet-export and alexnet-predict on a run trained here."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_module
from tensorflow.core.protobuf import saved_model_pb2

from alexnet_dist import runs
from alexnet_dist.data import augment
from alexnet_dist.train import run
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run: 2 epochs of the debug config (evaluated at steps 10 and 20)."""
    root = tmp_path_factory.mktemp("serving")
    with initialize_config_module("alexnet_dist.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["debug=tiny", f"data.cache_dir={root}"])
    result = run(cfg, str(root / "run"))
    (spec_dir,) = [d for d in glob.glob(str(root / "shapes-*")) if os.path.isdir(d)]
    return result, root / "run", spec_dir


def cli(*args):
    return run_cli(["-m", *args], timeout=300)


def test_eval_of_the_last_checkpoint_equals_the_runs_own_validation(trained):
    result, run_dir, _ = trained
    out = cli("alexnet_dist.evaluate", str(run_dir), "--checkpoint", "latest", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| model | crops | top-1 error | top-5 error | images |" in out.stdout
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(r["crops"], r["count"]) for r in rows] == [(1, 40), (10, 40)]
    centre = rows[0]
    assert centre["model"].endswith("ckpt-20")
    assert centre["top1"] == pytest.approx(result["val"]["top1"])
    assert centre["top5"] == pytest.approx(result["val"]["top5"])
    assert f"{100 * (1 - centre['top1']):.2f} %" in out.stdout


def test_export_predict_round_trip(trained, tmp_path):
    _, run_dir, spec_dir = trained
    exported = tmp_path / "exported"
    out = cli("alexnet_dist.export", str(run_dir), str(exported), "--checkpoint", "latest")
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads((exported / "alexnet_export.json").read_text())
    assert (info["crops"], info["classes"], info["variant"]) == (1, 10, "paper")
    # Nothing in it needs XLA: TF Serving runs without it unless told otherwise.
    saved = saved_model_pb2.SavedModel.FromString((exported / "saved_model.pb").read_bytes())
    functions = saved.meta_graphs[0].graph_def.library.function
    assert not [f.signature.name for f in functions if f.attr["_XlaMustCompile"].b]

    # The SavedModel's probabilities are the Keras model's on the same preprocessing.
    image_path = sorted(glob.glob(f"{spec_dir}/jpeg/val/circle/*.jpg"))[0]
    with open(image_path, "rb") as f:
        encoded = f.read()
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    served = serve(image_bytes=tf.constant([encoded, encoded]))
    cfg = runs.load_config(str(run_dir))
    model = runs.load_model(cfg, runs.find_checkpoint(str(run_dir), "latest"), 10)
    image = augment.resize_shorter_side(tf.io.decode_jpeg(encoded, channels=3), 72)
    image = augment.normalize(augment.center_crop(image, 67), cfg.data.mean, cfg.data.std)
    want = tf.nn.softmax(model(image[None], training=False)).numpy()[0]
    probabilities = served["probabilities"].numpy()
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities[0], want, rtol=1e-5, atol=1e-7)
    labels = runs.read_labels(str(run_dir))
    top5 = [labels[i] for i in np.argsort(-want)[:5]]
    assert [b.decode() for b in served["top5_labels"].numpy()[0]] == top5

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    out = cli("alexnet_dist.predict", str(exported), image_path, str(bad))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0] == image_path
    printed = [line.split()[1] for line in lines[1:6]]
    assert printed == top5
    assert float(lines[1].split()[2]) == pytest.approx(want.max(), abs=1e-4)
    assert f"{bad} is not a decodable JPEG" in out.stderr

    # The exported model evaluates to the same figures as its checkpoint.
    records = os.path.join(spec_dir, "records")
    out = cli("alexnet_dist.evaluate", "--saved-model", str(exported), "--data-dir", records,
              "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(out.stdout.strip().splitlines()[-1])
    ckpt = cli("alexnet_dist.evaluate", str(run_dir), "--checkpoint", "latest", "--crops", "1",
               "--json")  # fmt: skip
    (want_row,) = json.loads(ckpt.stdout.strip().splitlines()[-1])
    assert row["count"] == want_row["count"] == 40
    assert row["top1"] == pytest.approx(want_row["top1"])
    assert row["top5"] == pytest.approx(want_row["top5"])


def test_export_keeps_an_existing_folder_and_errors_name_the_path(trained, tmp_path):
    _, run_dir, _ = trained
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    out = cli("alexnet_dist.export", str(run_dir), str(taken))
    assert out.returncode == 1 and f"{taken} exists" in out.stderr
    assert (taken / "mine.txt").read_text() == "keep"
    out = cli("alexnet_dist.evaluate", str(tmp_path))
    assert out.returncode == 1
    assert f"{tmp_path}/config.yaml not found" in out.stderr
    out = cli("alexnet_dist.predict", str(tmp_path), "x.jpg")
    assert out.returncode == 1 and f"{tmp_path} is not a SavedModel" in out.stderr
