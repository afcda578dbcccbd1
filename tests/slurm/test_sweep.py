"""A Hydra sweep whose runs are Slurm jobs (hydra-submitit-launcher) on the test cluster."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),  # one test cluster: every Slurm test on one worker
]


def test_a_two_point_sweep_runs_as_slurm_jobs_and_lists_both_results(slurm, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.cli.train", "-m", "hydra/launcher=submitit_slurm",
         "debug=tiny", "trainer.max_steps=3",
         "optim.lr=0.01,0.02", f"hydra.sweep.dir={sweep_dir}"],
        cwd=REPO, env=slurm, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    lines = (sweep_dir / "results.jsonl").read_text().splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["job"] for r in results] == [0, 1]
    assert [r["overrides"][-1] for r in results] == ["optim.lr=0.01", "optim.lr=0.02"]
    assert all(r["step"] == 3 and 0 <= r["val"]["top1"] <= 1 for r in results)
    # Each run in its own directory, each the task of a Slurm job array (submitit's
    # folders are named <array job id>_<task>).
    for job in (0, 1):
        assert (sweep_dir / str(job) / "checkpoints" / "ckpt-3.index").exists()
    tasks = sorted(d for d in os.listdir(sweep_dir / ".submitit") if re.fullmatch(r"\d+_\d", d))
    assert [t.split("_")[1] for t in tasks] == ["0", "1"], tasks
    assert "sweep results" in result.stdout + result.stderr
