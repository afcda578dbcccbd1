"""The top classes of image files, from a model made by alexnet-export."""

import json
import os

import tensorflow as tf

from alexnet_dist.data.image_limits import ImageLimits, ImageTooLargeError


class PredictError(ValueError):
    """A model or image that cannot be used; the message names it."""


def load(saved_model: str):
    """The serving function of an alexnet-export SavedModel."""
    if not os.path.exists(os.path.join(saved_model, "saved_model.pb")):
        raise PredictError(f"{saved_model} is not a SavedModel (no saved_model.pb)")
    return tf.saved_model.load(saved_model).signatures["serving_default"]


def limits(saved_model: str) -> ImageLimits:
    """The image limits the model was exported with (its run's data.max_image_*)."""
    try:
        with open(os.path.join(saved_model, "alexnet_export.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return ImageLimits()
    default = ImageLimits()
    return ImageLimits(
        info.get("max_image_pixels", default.max_pixels),
        info.get("max_image_bytes", default.max_bytes),
    )


def predict(serve, path: str, image_limits: ImageLimits | None = None) -> list[tuple[str, float]]:
    """[(label, probability)] of the top classes of one image file, most likely first.

    A file above `image_limits` (bytes, or pixels as its header declares them) is refused
    before it is decoded."""
    image_limits = image_limits or ImageLimits()
    try:
        encoded = image_limits.read(path)
        image_limits.check_header(path, encoded)
    except OSError as e:
        raise PredictError(f"cannot read {path}: {e.strerror}") from None
    except ImageTooLargeError as e:
        raise PredictError(f"refusing {path}: {e.reason}") from None
    try:
        out = serve(image_bytes=tf.constant([encoded]))
    except tf.errors.InvalidArgumentError:
        raise PredictError(f"{path} is not a decodable JPEG, PNG, GIF or BMP image") from None
    labels = [b.decode() for b in out["top5_labels"].numpy()[0]]
    return list(zip(labels, out["top5_probabilities"].numpy()[0].tolist(), strict=True))
