"""`alexnet-predict`: the top-5 classes of image files, from a model made by alexnet-export.

alexnet-predict exported/alexnet photo.jpg other.jpg
"""

import argparse
import os
import sys

# TensorFlow's C++ info and warning lines drown the output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="alexnet-predict", description=__doc__.split("\n\n")[0])
    p.add_argument("saved_model", help="a folder written by alexnet-export")
    p.add_argument("images", nargs="+", help="image files")
    args = p.parse_args(argv)
    failed = 0
    try:
        serve = load(args.saved_model)
    except PredictError as e:
        print(f"alexnet-predict: error: {e}", file=sys.stderr)
        return 1
    for path in args.images:
        try:
            top = predict(serve, path)
        except PredictError as e:
            print(f"alexnet-predict: error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(path)
        for rank, (label, probability) in enumerate(top, 1):
            print(f"  {rank}. {label:<24} {probability:.4f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
