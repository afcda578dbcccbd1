"""The SavedModel of a run: servable without XLA, and the Keras model's probabilities on the
run's own preprocessing."""

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from alexnet_dist.data import augment
from alexnet_dist.training.run_dir import find_checkpoint, load_config, load_model, read_labels

pytestmark = pytest.mark.slow  # the session's tiny run and its export


def test_the_export_says_what_it_holds_and_needs_no_xla(exported):
    folder, _, _ = exported
    info = json.loads((folder / "alexnet_export.json").read_text())
    assert (info["crops"], info["classes"], info["variant"]) == (1, 10, "paper")
    assert info["checkpoint"].endswith("ckpt-20")
    # Nothing in it needs XLA: TF Serving runs without it unless told otherwise.
    saved = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    functions = saved.meta_graphs[0].graph_def.library.function
    assert not [f.signature.name for f in functions if f.attr["_XlaMustCompile"].b]


def test_the_saved_models_probabilities_are_the_keras_models(exported, tiny_run):
    folder, image_path, _ = exported
    run_dir = str(tiny_run[0])
    with open(image_path, "rb") as f:
        encoded = f.read()
    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    served = serve(image_bytes=tf.constant([encoded, encoded]))
    cfg = load_config(run_dir)
    model = load_model(cfg, find_checkpoint(run_dir, "latest"), 10)
    image = augment.resize_shorter_side(tf.io.decode_jpeg(encoded, channels=3), 72)
    image = augment.normalize(augment.center_crop(image, 67), cfg.data.mean, cfg.data.std)
    want = tf.nn.softmax(model(image[None], training=False)).numpy()[0]
    probabilities = served["probabilities"].numpy()
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities[0], want, rtol=1e-5, atol=1e-7)
    labels = read_labels(run_dir)
    top5 = [labels[i] for i in np.argsort(-want)[:5]]
    assert [b.decode() for b in served["top5_labels"].numpy()[0]] == top5
    np.testing.assert_allclose(
        served["top5_probabilities"].numpy()[0], np.sort(want)[::-1][:5], rtol=1e-5, atol=1e-7
    )
