"""A trained run as a SavedModel that classifies encoded images, for TF Serving and
alexnet-predict.

The serving signature takes a batch of encoded JPEG (or PNG) bytes and does the
run's own evaluation preprocessing inside the graph (shorter side to
data.resize_size, centre crop or the paper's 10 crops, mean/std), so a client
sends files as they are and gets class probabilities back, with the top-5 labels.
An image above the run's data.max_image_bytes, or whose header declares more than
data.max_image_pixels, fails the request before it is decoded (InvalidArgument):

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
        self._max_pixels = cfg.data.max_image_pixels
        self._max_bytes = cfg.data.max_image_bytes

    def preprocess(self, encoded: tf.Tensor) -> tf.Tensor:
        """One encoded image -> (crop, crop, 3), or (10, crop, crop, 3), network input."""
        size = tf.cast(tf.strings.length(encoded), tf.int64)
        checks = [
            tf.debugging.assert_less_equal(
                size, tf.constant(self._max_bytes, tf.int64),
                message=f"image file above the limit of {self._max_bytes} bytes "
                "(data.max_image_bytes)",
            ),
            tf.debugging.assert_less_equal(
                declared_pixels(encoded), tf.constant(self._max_pixels, tf.int64),
                message=f"image above the limit of {self._max_pixels} pixels "
                "(data.max_image_pixels), as its header declares",
            ),
        ]  # fmt: skip
        with tf.control_dependencies(checks):
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


def declared_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """Width x height (int64) as a JPEG, PNG, GIF or BMP header declares them, read without
    decoding; 0 for anything else (the decoder then says what is wrong)."""
    padded = tf.strings.join([encoded, tf.constant(b"\0" * 32)])  # a short file reads zeros

    def field(offset: int, size: int, big_endian: bool) -> tf.Tensor:
        raw = tf.io.decode_raw(tf.strings.substr(padded, offset, size), tf.uint8)
        raw = tf.cast(raw, tf.int64)
        weights = [256 ** (size - 1 - i) if big_endian else 256**i for i in range(size)]
        return tf.reduce_sum(raw * tf.constant(weights, tf.int64))

    def bmp_height() -> tf.Tensor:  # signed: negative for a top-down bitmap
        height = field(22, 4, big_endian=False)
        return tf.abs(tf.where(height >= 2**31, height - 2**32, height))

    def jpeg() -> tf.Tensor:
        shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
        return shape[0] * shape[1]

    magic = tf.strings.substr(padded, 0, 8)
    return tf.case(
        [
            (tf.strings.substr(magic, 0, 2) == b"\xff\xd8", jpeg),
            (magic == b"\x89PNG\r\n\x1a\n",
             lambda: field(16, 4, big_endian=True) * field(20, 4, big_endian=True)),
            (tf.strings.substr(magic, 0, 3) == b"GIF",
             lambda: field(6, 2, big_endian=False) * field(8, 2, big_endian=False)),
            (tf.strings.substr(magic, 0, 2) == b"BM",
             lambda: field(18, 4, big_endian=False) * bmp_height()),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )  # fmt: skip


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
            "max_image_pixels": cfg.data.max_image_pixels,
            "max_image_bytes": cfg.data.max_image_bytes,
        }  # fmt: skip
        with open(os.path.join(scratch, EXPORT_INFO), "w") as f:
            json.dump(info, f, indent=1)
        os.rename(scratch, out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return path
