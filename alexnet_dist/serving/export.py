"""A trained run as a SavedModel that classifies encoded images, for TF Serving and
alexnet-predict.

The serving signature takes a batch of encoded JPEG (or PNG) bytes and does the
run's own evaluation preprocessing inside the graph (shorter side to
data.resize_size, centre crop or the paper's 10 crops, mean/std), so a client
sends files as they are and gets class probabilities back, with the top-5 labels:

    serving_default(image_bytes: string[batch]) -> {
        probabilities: float32[batch, classes], top5_probabilities: float32[batch, 5],
        top5_indices: int32[batch, 5], top5_labels: string[batch, 5]}
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from alexnet_dist.backend.xla import without_xla
from alexnet_dist.config import Config
from alexnet_dist.data import augment
from alexnet_dist.training.run_dir import find_checkpoint, load_config, load_model, read_labels
from alexnet_dist.training.step import predict_log_probs

EXPORT_INFO = "alexnet_export.json"


class Classifier(tf.Module):
    """The trained network with its preprocessing, as one servable function."""

    def __init__(self, model, labels: list[str], cfg: Config, crops: int):
        super().__init__(name="alexnet_classifier")
        self.model = model
        self.labels = tf.constant(labels)
        self._crops = crops
        self._crop = cfg.model.image_size
        self._resize = cfg.data.resize_size
        self._mean, self._std = tuple(cfg.data.mean), tuple(cfg.data.std)
        self._top = min(5, len(labels))

    def preprocess(self, encoded: tf.Tensor) -> tf.Tensor:
        """One encoded image -> (crop, crop, 3), or (10, crop, crop, 3), network input."""
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = augment.resize_shorter_side(image, self._resize)
        if self._crops == 10:
            image = augment.ten_crops(image, self._crop)
        else:
            image = augment.center_crop(image, self._crop)
        return augment.normalize(image, self._mean, self._std)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        shape = [self._crop, self._crop, 3] if self._crops == 1 else [10, self._crop, self._crop, 3]
        images = tf.map_fn(
            self.preprocess, image_bytes, fn_output_signature=tf.TensorSpec(shape, tf.float32)
        )
        probabilities = tf.exp(predict_log_probs(self.model, images))
        top = tf.math.top_k(probabilities, k=self._top)
        return {
            "probabilities": probabilities,
            "top5_probabilities": top.values,
            "top5_indices": top.indices,
            "top5_labels": tf.gather(self.labels, top.indices),
        }


def export(run_dir: str, out_dir: str, checkpoint: str = "best", crops: int = 1) -> str:
    """Writes the SavedModel of `run_dir`'s checkpoint to `out_dir`; returns the checkpoint used.

    The SavedModel is written to a scratch folder beside `out_dir` and renamed, so
    `out_dir` never holds half an export.
    """
    if os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir} exists; choose another folder or remove it first")
    cfg = load_config(run_dir)
    labels = read_labels(run_dir)
    path = find_checkpoint(run_dir, checkpoint)
    model = load_model(cfg, path, len(labels))
    classifier = Classifier(model, labels, cfg, crops)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".alexnet-export-", dir=parent)
    try:
        with without_xla():  # servable without XLA (TF Serving's default)
            tf.saved_model.save(
                classifier, scratch, signatures={"serving_default": classifier.serve}
            )
        info = {
            "run_dir": os.path.abspath(run_dir), "checkpoint": os.path.abspath(path),
            "variant": cfg.model.variant, "classes": len(labels), "crops": crops,
            "image_size": cfg.model.image_size, "resize_size": cfg.data.resize_size,
        }  # fmt: skip
        with open(os.path.join(scratch, EXPORT_INFO), "w") as f:
            json.dump(info, f, indent=1)
        os.rename(scratch, out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return path
