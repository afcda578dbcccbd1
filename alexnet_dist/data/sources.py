"""Where the training records come from, chosen by `data.source`."""

import os

from alexnet_dist.config import DataConfig
from alexnet_dist.data import shapes


def records_dir(cfg: DataConfig) -> str:
    """The directory of converted records for `cfg`; generates the built-in set if needed."""
    if cfg.source == "shapes":
        spec = shapes.ShapesSpec(
            image_size=cfg.shapes.image_size,
            train_per_class=cfg.shapes.train_per_class,
            val_per_class=cfg.shapes.val_per_class,
        )
        return shapes.prepare(cfg.cache_dir, spec)
    path = os.path.expanduser(cfg.dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data.dir={cfg.dir!r} does not exist or is not a directory")
    return path
