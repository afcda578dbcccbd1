"""N replicas x batch b for k steps end with the weights of 1 replica x batch N*b,
whether each replica holds the model on one device or its towers on two."""

import json

import pytest

from alexnet_dist.distribute import cluster, launcher
from alexnet_dist.doctor.numerics import load
from tests.distribute.numerics import PER_REPLICA, assert_same_weights, driver, finish

pytestmark = pytest.mark.multiprocess


def test_mirrored_on_two_devices_matches_one_replica(single_weights, tmp_path):
    finish(driver("mirrored", PER_REPLICA, tmp_path / "w.npz"))
    assert_same_weights(load(tmp_path / "w.npz"), *single_weights)


def test_towers_on_two_devices_match_one_device(single_weights, tmp_path):
    # One replica, tower a on /cpu:0 and tower b on /cpu:1, the same global batch.
    finish(driver("single", 2 * PER_REPLICA, tmp_path / "w.npz", options=["towers"]))
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
