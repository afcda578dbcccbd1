"""Where a MultiWorkerMirroredStrategy job's cluster comes from, and errors that name what is
wrong with it."""

import os
import subprocess
import sys

import pytest

from alexnet_dist.config import ConfigError
from alexnet_dist.distribute import cluster
from tests.helpers import (
    REPO,
    run_cli,
)

pytestmark = pytest.mark.slow  # runs in processes of their own


def test_missing_tf_config_is_a_config_error(tmp_path):
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", "distribute=multiworker",
         f"hydra.run.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"],
        env={"TF_CONFIG": ""},
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs the TF_CONFIG environment variable" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "raw, match",
    [
        ("{not json", "not valid JSON"),
        ('{"cluster": {}}', "must look like"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "only 'worker'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "outside"),
        (
            '{"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}',
            "host:port",
        ),
    ],
)
def test_malformed_tf_config_is_named(raw, match):
    with pytest.raises(ConfigError, match=match):
        cluster.read_tf_config({"TF_CONFIG": raw})


def test_slurm_cluster_outside_a_job_step_is_a_config_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.cli.train", "debug=tiny", "distribute=multiworker",
         "distribute.cluster=slurm", f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs a Slurm job step" in result.stdout + result.stderr


@pytest.mark.security
def test_each_slurm_job_takes_ports_of_its_own():
    # distribute.port_base=null (the default): a range per job, from its id, rather than
    # one default that every job on the node, and anyone aiming at it, shares.
    first = cluster.job_port_base({"SLURM_JOB_ID": "4242"})
    assert first == 20_000 + 242 * 16
    assert cluster.job_port_base({"SLURM_JOB_ID": "4242"}) == first  # a requeued job
    others = {cluster.job_port_base({"SLURM_JOB_ID": str(j)}) for j in range(4243, 4258)}
    assert first not in others and len(others) == 15
    assert all(20_000 <= p <= 65_535 - 16 for p in others)
    with pytest.raises(ConfigError, match="SLURM_JOB_ID is '': run under Slurm, or set"):
        cluster.job_port_base({})
