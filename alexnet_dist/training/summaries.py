"""TensorBoard (scalars, images, hyperparameters, profiles) and metrics.jsonl; chief only."""

import json
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

log = logging.getLogger(__name__)


class Summaries:
    """One TensorBoard writer per split under `run_dir/tensorboard/`, and the same
    figures as JSON lines in `run_dir/metrics.jsonl` for scripts."""

    def __init__(self, run_dir: str, write: bool = True):
        self.logdir = os.path.join(run_dir, "tensorboard")
        self.jsonl = os.path.join(run_dir, "metrics.jsonl")
        self._writers = {}
        self._write = write

    def _writer(self, split: str):
        if split not in self._writers:
            if self._write:
                self._writers[split] = tf.summary.create_file_writer(
                    os.path.join(self.logdir, split)
                )
            else:
                self._writers[split] = tf.summary.create_noop_writer()
        return self._writers[split]

    def scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        with self._writer(split).as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        if self._write:
            with open(self.jsonl, "a") as f:
                f.write(json.dumps({"split": split, "step": step, **values}) + "\n")

    def image(self, split: str, step: int, name: str, image: np.ndarray, description: str) -> None:
        """One image (height, width, 3) in [0, 1]."""
        if self._write:
            with self._writer(split).as_default(step=step):
                tf.summary.image(name, image[None], step=step, description=description)

    def hparams(self, config: dict, metrics: list[tuple[str, str]]) -> None:
        """The run's flattened config in the HParams dashboard, next to its metrics.

        Args:
            config: nested config (dicts); lists and None become strings.
            metrics: (split, tag) pairs of the scalars to compare runs by.
        """
        if not self._write:
            return
        flat = {k: _hparam_value(v) for k, v in _flatten(config).items()}
        with self._writer("hparams").as_default():
            hparams_api.hparams_config(
                hparams=[hparams_api.HParam(k) for k in flat],
                metrics=[hparams_api.Metric(tag, group=split) for split, tag in metrics],
            )
            hparams_api.hparams(flat, trial_id=os.path.basename(os.path.dirname(self.logdir)))

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


class Meter:
    """Accumulates the step sums between two reports, and the images/s over that window."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.data_wait = 0.0
        self.start = time.perf_counter()

    def add(self, sums: dict, data_wait: float = 0.0) -> None:
        """Adds one step's sums, and the seconds it waited for its batch."""
        for key, value in sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.steps += 1
        self.data_wait += data_wait

    def result(self) -> dict[str, float]:
        """Mean loss, top-1/top-5 accuracy, images/s, and seconds per step and waiting for
        data per step, since the last reset."""
        count = self.sums.get("count", 0.0)
        if not count:
            return {}
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return {
            "loss": self.sums["loss_sum"] / count,
            "top1": self.sums["top1"] / count,
            "top5": self.sums["top5"] / count,
            "images_per_sec": count / elapsed,
            "step_time": elapsed / self.steps,
            "data_wait": self.data_wait / self.steps,
        }


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _hparam_value(value):
    return value if isinstance(value, bool | int | float | str) else str(value)


def tile(images: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """(n, h, w, c) images -> one (rows*(h+pad)+pad, columns*(w+pad)+pad, c) grid, padding white."""
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), images.dtype)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid


def input_grid(inputs: dict, count: int = 16) -> np.ndarray:
    """The first `count` images of a training batch as the network sees them (mirrored,
    with their lighting shift, before normalisation), in [0, 1]."""
    images = np.asarray(inputs["pixels"][:count], np.float32)
    if "mirror" in inputs:
        flip = np.asarray(inputs["mirror"][:count])
        images[flip] = images[flip, :, ::-1]
    if "lighting" in inputs:
        images += np.asarray(inputs["lighting"][:count])[:, None, None, :]
    return tile(np.clip(images / 255.0, 0.0, 1.0), columns=math.ceil(math.sqrt(len(images))))


def conv1_filters(model: keras.Model, columns: int = 16) -> np.ndarray:
    """The first layer's kernels as a grid, each scaled to [0, 1] (the paper's Figure 3).

    The two-tower network shows tower a's filters above tower b's, as in the
    figure, where the first GPU's were colour-agnostic and the second's
    colour-specific.
    """
    towers = [layer for layer in model.layers if layer.name.startswith("conv1")]
    grids = []
    for layer in sorted(towers, key=lambda layer: layer.name):
        kernel = np.transpose(keras.ops.convert_to_numpy(layer.kernel), (3, 0, 1, 2))
        low = kernel.min(axis=(1, 2, 3), keepdims=True)
        high = kernel.max(axis=(1, 2, 3), keepdims=True)
        grids.append(tile((kernel - low) / np.maximum(high - low, 1e-12), columns))
    return np.concatenate(grids, axis=0)
