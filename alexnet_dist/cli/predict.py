"""`alexnet-predict`: the top-5 classes of image files, from a model made by alexnet-export.

alexnet-predict exported/alexnet photo.jpg other.jpg
"""

import argparse
import os
import sys

# TensorFlow's C++ info and warning lines drown the output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.serving.predict import PredictError, limits, load, predict  # noqa: E402


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
    image_limits = limits(args.saved_model)
    for path in args.images:
        try:
            top = predict(serve, path, image_limits)
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
