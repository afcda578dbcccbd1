"""Sweeps: every run leaves its final figures in result.json; a sweep gathers them in one table.

    alexnet-train -m optim.lr=0.01,0.02 ...                                # one run after another
    alexnet-train -m hydra/launcher=submitit_slurm optim.lr=0.01,0.02 ...  # a Slurm job per run

(the Slurm launcher is hydra-submitit-launcher: `pip install .[slurm]`). Each run
writes `result.json` into its run directory when it finishes. When the sweep
ends, `SweepSummary` (a Hydra callback, set in conf/config.yaml) collects them
into `<sweep dir>/results.jsonl`, one line per run: its number, its overrides,
its last step and its validation loss, top-1 and top-5, and logs them as a table.
"""

import glob
import json
import logging
import os

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("alexnet_dist")

RESULT_FILE = "result.json"
SWEEP_FILE = "results.jsonl"


def write_result(run_dir: str, step: int, val: dict, overrides: list[str], job: int | None):
    """The run's final figures, where a sweep (or a script) finds them."""
    result = {"job": job, "overrides": overrides, "step": step, "val": val}
    with open(os.path.join(run_dir, RESULT_FILE), "w") as f:
        json.dump(result, f)


def collect(sweep_dir: str) -> list[dict]:
    """The result.json of every run of the sweep, in job order (runs that failed have none)."""
    results = []
    for path in glob.glob(os.path.join(sweep_dir, "*", RESULT_FILE)):
        with open(path) as f:
            results.append(json.load(f))
    return sorted(results, key=lambda r: (r["job"] is None, r["job"] or 0))


class SweepSummary(Callback):
    """Writes <sweep dir>/results.jsonl and logs the table when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = config.hydra.sweep.dir
        results = collect(sweep_dir)
        with open(os.path.join(sweep_dir, SWEEP_FILE), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
        lines = [f"{'job':>4} {'step':>7} {'val top-1':>9} {'val top-5':>9}  overrides"]
        for r in results:
            val = r["val"]
            lines.append(
                f"{r['job']!s:>4} {r['step']:>7} {val.get('top1', float('nan')):>9.4f} "
                f"{val.get('top5', float('nan')):>9.4f}  {' '.join(r['overrides'])}"
            )
        log.info("sweep results (%s):\n%s", os.path.join(sweep_dir, SWEEP_FILE), "\n".join(lines))
