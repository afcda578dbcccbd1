"""The top classes of image files, from a model made by alexnet-export."""

import os

import tensorflow as tf


class PredictError(ValueError):
    """A model or image that cannot be used; the message names it."""


def load(saved_model: str):
    """The serving function of an alexnet-export SavedModel."""
    if not os.path.exists(os.path.join(saved_model, "saved_model.pb")):
        raise PredictError(f"{saved_model} is not a SavedModel (no saved_model.pb)")
    return tf.saved_model.load(saved_model).signatures["serving_default"]


def predict(serve, path: str) -> list[tuple[str, float]]:
    """[(label, probability)] of the top classes of one image file, most likely first."""
    try:
        with open(path, "rb") as f:
            encoded = f.read()
    except OSError as e:
        raise PredictError(f"cannot read {path}: {e.strerror}") from None
    try:
        out = serve(image_bytes=tf.constant([encoded]))
    except tf.errors.InvalidArgumentError:
        raise PredictError(f"{path} is not a decodable JPEG, PNG, GIF or BMP image") from None
    labels = [b.decode() for b in out["top5_labels"].numpy()[0]]
    return list(zip(labels, out["top5_probabilities"].numpy()[0].tolist(), strict=True))
