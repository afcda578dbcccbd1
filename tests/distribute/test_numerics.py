"""N replicas x batch b for k steps end with the weights of 1 replica x batch N*b."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from alexnet_dist.distribute import cluster, launcher
from tests.helpers import REPO

pytestmark = pytest.mark.multiprocess

STEPS, PER_REPLICA = 3, 4
DRIVER = ["-m", "tests.distribute.numerics_driver"]


def driver(backend, per_replica, out, env=None, steps=STEPS):
    return subprocess.Popen(
        [sys.executable, *DRIVER, backend, str(steps), str(per_replica), str(out)],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc, timeout=240):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err[-3000:]


@pytest.fixture(scope="module")
def single_weights(tmp_path_factory):
    """(weights after STEPS steps of one replica with batch 2b, weights at step 0)."""
    folder = tmp_path_factory.mktemp("single")
    finish(driver("single", 2 * PER_REPLICA, folder / "w.npz"))
    finish(driver("single", 2 * PER_REPLICA, folder / "w0.npz", steps=0))
    return load(folder / "w.npz"), load(folder / "w0.npz")


def load(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def assert_same_weights(got, want, initial):
    assert len(got) == len(want) == 30  # kernel and bias of 10 convolutions and 5 dense layers
    for i, (g, w, w0) in enumerate(zip(got, want, initial, strict=True)):
        assert g.shape == w.shape
        assert not np.array_equal(w, w0), f"weight {i} did not train"
        rel = np.linalg.norm(g - w) / np.linalg.norm(w)
        assert rel < 1e-5, (i, rel)


def test_mirrored_on_two_devices_matches_one_replica(single_weights, tmp_path):
    finish(driver("mirrored", PER_REPLICA, tmp_path / "w.npz"))
    assert_same_weights(load(tmp_path / "w.npz"), *single_weights)


def test_two_worker_processes_match_one_replica(single_weights, tmp_path):
    workers = [f"localhost:{p}" for p in launcher.free_ports(2)]
    procs = [
        driver("multiworker", PER_REPLICA, tmp_path / "w.npz",
               env={"TF_CONFIG": json.dumps(cluster.tf_config(workers, i))})
        for i in range(2)
    ]  # fmt: skip
    try:
        for p in procs:
            finish(p)
    finally:
        for p in procs:
            p.kill()
    assert_same_weights(load(tmp_path / "w.npz"), *single_weights)
