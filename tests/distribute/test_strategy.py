"""The tf.distribute backends (single, mirrored, multiworker): N replicas x batch b for k steps
end with the weights of 1 replica x batch N*b, whether each replica holds the model on one
device or its towers on two, and the errors that stop a job before its workers block."""

import json
import time

import pytest

from alexnet_dist.distribute import cluster, launcher
from alexnet_dist.doctor.numerics import load
from tests.distribute.helpers import numerics_run
from tests.helpers import (
    PER_REPLICA,
    TINY_RUN,
    assert_all_reduce_logged,
    assert_same_weights,
    checkpoint_weights,
    driver,
    finish,
    finish_driver,
    launch_multiworker,
    relative_difference,
    run_cli,
)


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one_replica(single_weights, tmp_path):
    # A process of its own: MirroredStrategy over two logical CPUs.
    finish_driver(driver("mirrored", PER_REPLICA, tmp_path / "w.npz"))
    assert_same_weights(load(tmp_path / "w.npz"), *single_weights)


def test_towers_on_two_devices_match_one_device(single_weights):
    # One replica, tower a on /cpu:0 and tower b on /cpu:1, the same global batch.
    assert_same_weights(numerics_run("single", 2 * PER_REPLICA, towers=True), *single_weights)


@pytest.mark.multiprocess
def test_two_worker_processes_match_one_replica(single_weights, tmp_path):
    workers = [f"localhost:{p}" for p in launcher.free_ports(2)]
    procs = [
        driver("multiworker", PER_REPLICA, tmp_path / "w.npz",
               env={"TF_CONFIG": json.dumps(cluster.tf_config(workers, i))})
        for i in range(2)
    ]  # fmt: skip
    try:
        for p in procs:
            finish_driver(p)
    finally:
        for p in procs:
            p.kill()
    assert_same_weights(load(tmp_path / "w.npz"), *single_weights)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_indivisible_batch_fails_before_workers_block(tmp_path):
    start = time.monotonic()
    code, out, err = finish(
        launch_multiworker(tmp_path / "run", "data.global_batch_size=15"), timeout=120
    )
    assert code != 0
    assert "data.global_batch_size=15 does not divide evenly over 2 replicas" in out + err
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_mirrored_through_the_entry_point_trains_as_one_replica_across_epochs(tmp_path, tiny_run):
    # The two replicas of one process share its one input pipeline, a batch each per step.
    # Over both epochs of debug=tiny (10 steps each), stopped at step 13 and resumed, they
    # see the images one replica with the same global batch sees (the session's tiny run,
    # dropout off), and end with its weights.
    mirrored = ["-m", "alexnet_dist.cli.train", *TINY_RUN, "distribute=mirrored",
                "distribute.logical_cpus=2",
                f"hydra.run.dir={tmp_path}/mirrored"]  # fmt: skip
    first = run_cli([*mirrored, "trainer.max_steps=13"], timeout=300)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "(8 per replica x 2 replicas)" in first.stdout
    assert_all_reduce_logged(first.stdout, replicas=2)
    second = run_cli(mirrored, timeout=300)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "(step 13" in second.stdout and "finished at step 20" in second.stdout
    got = checkpoint_weights(tmp_path / "mirrored" / "checkpoints" / "ckpt-20")
    want = checkpoint_weights(tiny_run[0] / "checkpoints" / "ckpt-20")
    assert relative_difference(got, want) < 1e-5


@pytest.mark.multiprocess
@pytest.mark.slow
def test_fewer_shards_than_workers_is_named_before_training(tmp_path):
    from PIL import Image

    from alexnet_dist.data.converter import convert_tree

    for split in ("train", "val"):
        for c in range(2):
            folder = tmp_path / "images" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (72, 72), (60 * c, 20 * i, 90)).save(folder / f"{i}.jpg")
        convert_tree(str(tmp_path / "images" / split), str(tmp_path / "records"), split, 1, 1)
    code, out, err = finish(
        launch_multiworker(tmp_path / "run", "data=tfrecord", f"data.dir={tmp_path}/records",
               "data.resize_size=72", "data.global_batch_size=4"),
        timeout=120,
    )  # fmt: skip
    assert code != 0
    assert "1 'train' shards" in out + err and "cannot be split over 2 workers" in out + err
    assert not (tmp_path / "run" / "checkpoints").exists()
