"""Every run leaves its figures in result.json; a sweep's runs are gathered in one table
(the sweep as Slurm jobs: tests/slurm/test_sweep.py)."""

import json

from omegaconf import OmegaConf

from alexnet_dist.training import sweep


def test_a_sweep_gathers_its_runs_results_in_job_order(tmp_path, caplog):
    for job, lr in ((1, 0.02), (0, 0.01)):
        run = tmp_path / str(job)
        run.mkdir()
        val = {"loss": 1.5, "top1": 0.25 * (job + 1), "top5": 0.75}
        sweep.write_result(str(run), 20, val, [f"optim.lr={lr}"], job)
    (tmp_path / "2").mkdir()  # a run that failed: no result.json
    assert [r["job"] for r in sweep.collect(str(tmp_path))] == [0, 1]

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with caplog.at_level("INFO", logger="alexnet_dist"):
        sweep.SweepSummary().on_multirun_end(config)
    lines = (tmp_path / sweep.SWEEP_FILE).read_text().splitlines()
    assert [json.loads(line)["overrides"] for line in lines] == [
        ["optim.lr=0.01"],
        ["optim.lr=0.02"],
    ]
    assert "   1      20    0.5000    0.7500  optim.lr=0.02" in caplog.text
