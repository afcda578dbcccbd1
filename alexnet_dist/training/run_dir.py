"""The run directory: what a run writes there for later commands, and reads back.

alexnet-eval and alexnet-export start from a run directory, as alexnet-train
left it: `config.yaml` (the resolved config: how the model was built, written by
the trainer whether or not Hydra keeps its own `.hydra/`), `labels.txt` (class
names in label order) and `checkpoints/` (the newest K and `best/`).
"""

import os

import keras
import tensorflow as tf
from omegaconf import OmegaConf

from alexnet_dist.config import Config
from alexnet_dist.distribute.placement import build_model
from alexnet_dist.training.checkpoint import best_checkpoint, checkpoint_dir

LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.yaml"


class RunError(FileNotFoundError):
    """The run directory lacks what is asked of it; the message names the path."""


def write_run_info(run_dir: str, cfg: Config, labels: list[str]) -> None:
    """What alexnet-eval and alexnet-export need: the config and the class names."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, CONFIG_FILE), "w") as f:
        f.write(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    with open(os.path.join(run_dir, LABELS_FILE), "w") as f:
        f.write("".join(f"{label}\n" for label in labels))


def load_config(run_dir: str) -> Config:
    """The run's composed config, as the typed schema."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise RunError(f"{path} not found: {run_dir} is not an alexnet-train run directory")
    merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(path))
    return OmegaConf.to_object(merged)


def read_labels(run_dir: str) -> list[str]:
    path = os.path.join(run_dir, LABELS_FILE)
    if not os.path.exists(path):
        raise RunError(f"{path} not found (alexnet-train writes it when a run starts)")
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def find_checkpoint(run_dir: str, which: str = "best") -> str:
    """The checkpoint prefix for `which`: "best", "latest", or a path to a checkpoint.

    "best" falls back to the newest checkpoint when the run never evaluated.
    """
    if which == "best":
        path = best_checkpoint(run_dir)
        if path:
            return path
        which = "latest"
    if which == "latest":
        path = tf.train.latest_checkpoint(checkpoint_dir(run_dir))
        if not path:
            raise RunError(f"no checkpoint in {checkpoint_dir(run_dir)}")
        return path
    if not os.path.exists(which + ".index"):
        raise RunError(f"checkpoint {which} not found ({which}.index does not exist)")
    return which


def load_model(cfg: Config, checkpoint: str, num_classes: int) -> keras.Model:
    """The run's network, built in float32 on one device, with the checkpoint's weights.

    Mixed-precision runs keep float32 weights, so the same checkpoint serves.
    """
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        model = build_model(cfg.model, num_classes)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    try:
        tf.train.Checkpoint(model=model).restore(
            checkpoint
        ).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RunError(f"checkpoint {checkpoint} does not fit the run's model: {e}") from None
    return model
