"""TensorBoard scalars and console progress; written by the chief only."""

import json
import logging
import os
import time

import tensorflow as tf

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
