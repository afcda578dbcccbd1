"""Two real worker processes through the launcher and the real entry point."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from alexnet_dist.config import ConfigError
from alexnet_dist.distribute import cluster
from tests.helpers import (
    REPO,
    assert_all_reduce_logged,
    assert_skipped_then_lowered,
    checkpoint_weights,
    finish,
    relative_difference,
    run_cli,
    signal_when,
    start_cli,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def launch(run_dir, cache, *overrides, workers=2):
    return start_cli(
        [sys.executable, "-m", "alexnet_dist.distribute.launcher", "-n", str(workers),
         "--run-dir", str(run_dir), "debug=tiny", f"data.cache_dir={cache}", *overrides]
    )  # fmt: skip


def test_two_workers_train_write_one_set_of_outputs_and_resume(tmp_path, cache):
    run_dir = tmp_path / "run"
    code, out, err = finish(launch(run_dir, cache, "trainer.max_steps=4"))
    assert code == 0, err[-4000:]
    assert "2 replicas" in out and "finished at step 4" in out
    assert out.count("finished at step") == 1  # one console: the chief's
    assert_all_reduce_logged(out, replicas=2)

    ckpts = sorted(os.path.basename(p) for p in glob.glob(f"{run_dir}/**/*.index", recursive=True))
    assert ckpts == ["best-4.index", "ckpt-4.index"]
    events = glob.glob(f"{run_dir}/**/events.out.tfevents.*", recursive=True)
    assert sorted(os.path.relpath(e, run_dir).split(os.sep)[1] for e in events) == [
        "hparams",
        "train",
        "val",
    ]
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert (run_dir / "train.log").exists() and (run_dir / "worker-1.log").exists()

    # Resumed with the ring all-reduce instead of the default choice, and the plateau
    # rule (min_delta 1: the evaluation at step 12 cannot improve on the one at 10).
    code, out, err = finish(
        launch(run_dir, cache, "trainer.max_steps=12", "distribute.collective=ring",
               "optim.schedule=plateau", "optim.plateau_min_delta=1.0")
    )  # fmt: skip
    assert code == 0, err[-4000:]
    assert "resumed from" in out and "ckpt-4" in out
    assert "finished at step 12" in out
    assert (run_dir / "checkpoints" / "ckpt-12.index").exists()
    # Both workers took the same decision at the same step.
    for log in ("train.log", "worker-1.log"):
        text = (run_dir / log).read_text()
        assert text.count("learning rate divided by 10 at step 12 (drop 1 of at most 3)") == 1


def _children(pid):
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


def test_a_killed_worker_ends_the_job(tmp_path, cache):
    proc = launch(tmp_path / "run", cache, "trainer.max_steps=100000", "trainer.epochs=100000")
    try:
        deadline = time.monotonic() + 180
        for line in proc.stdout:  # wait until both workers are training
            if " step " in line or time.monotonic() > deadline:
                break
        workers = _children(proc.pid)
        assert len(workers) == 2
        killed_at = time.monotonic()
        os.kill(max(workers), signal.SIGKILL)  # the later-started one: worker 1
        code = proc.wait(timeout=60)
        assert time.monotonic() - killed_at < 60
        assert code != 0
        assert "exited with 137" in proc.stderr.read()
        assert not any(os.path.exists(f"/proc/{w}") and _alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_indivisible_batch_fails_before_workers_block(tmp_path, cache):
    start = time.monotonic()
    code, out, err = finish(
        launch(tmp_path / "run", cache, "data.global_batch_size=15"), timeout=120
    )
    assert code != 0
    assert "data.global_batch_size=15 does not divide evenly over 2 replicas" in out + err
    assert time.monotonic() - start < 120


def test_missing_tf_config_is_a_config_error(tmp_path):
    result = run_cli(
        ["-m", "alexnet_dist.train", "debug=tiny", "distribute=multiworker",
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


def test_mirrored_through_the_entry_point_trains_as_one_replica_across_epochs(tmp_path, cache):
    # The two replicas of one process share its one input pipeline, a batch each per step.
    # Over both epochs of debug=tiny (10 steps each), stopped at step 13 and resumed, they
    # see the images one replica with the same global batch sees, and end with its weights.
    common = ["-m", "alexnet_dist.train", "debug=tiny", f"data.cache_dir={cache}",
              "model.dropout=0.0"]  # fmt: skip
    single = run_cli([*common, f"hydra.run.dir={tmp_path}/single"], timeout=300)
    assert single.returncode == 0, single.stderr[-4000:]
    mirrored = [*common, "distribute=mirrored", "distribute.logical_cpus=2",
                f"hydra.run.dir={tmp_path}/mirrored"]  # fmt: skip
    first = run_cli([*mirrored, "trainer.max_steps=13"], timeout=300)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "(8 per replica x 2 replicas)" in first.stdout
    assert_all_reduce_logged(first.stdout, replicas=2)
    second = run_cli(mirrored, timeout=300)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "(step 13" in second.stdout and "finished at step 20" in second.stdout
    got = checkpoint_weights(tmp_path / "mirrored" / "checkpoints" / "ckpt-20")
    want = checkpoint_weights(tmp_path / "single" / "checkpoints" / "ckpt-20")
    assert relative_difference(got, want) < 1e-5


def test_fewer_shards_than_workers_is_named_before_training(tmp_path, cache):
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
        launch(tmp_path / "run", cache, "data=tfrecord", f"data.dir={tmp_path}/records",
               "data.resize_size=72", "data.global_batch_size=4"),
        timeout=120,
    )  # fmt: skip
    assert code != 0
    assert "1 'train' shards" in out + err and "cannot be split over 2 workers" in out + err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_sigterm_stops_every_worker_at_the_same_step_with_a_checkpoint(tmp_path, cache):
    run_dir = tmp_path / "run"
    proc = launch(run_dir, cache, "trainer.max_steps=100000", "trainer.epochs=100000",
                  "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=100000")  # fmt: skip
    out = signal_when(proc, " step 3/", signal.SIGTERM)  # the launcher forwards it to both workers
    assert proc.returncode == 75, out[-3000:]
    stopped = int(out.split("stopped at step ")[1].split()[0])
    ckpts = glob.glob(f"{run_dir}/**/*.index", recursive=True)
    assert [os.path.basename(c) for c in ckpts] == [f"ckpt-{stopped}.index"]
    assert "Traceback" not in (run_dir / "worker-1.log").read_text()


def test_fp16_loss_scaling_skips_the_same_steps_on_both_workers(tmp_path, cache):
    # A scale of 2**40 overflows float16: both workers must skip together (or hang).
    run_dir = tmp_path / "run"
    code, out, err = finish(
        launch(run_dir, cache, "trainer.max_steps=4", "trainer.log_every_steps=1",
               "precision=mixed_float16", "precision.initial_loss_scale=1099511627776")
    )  # fmt: skip
    assert code == 0, err[-4000:]
    assert_skipped_then_lowered(run_dir, 2.0**40)


def test_slurm_cluster_outside_a_job_step_is_a_config_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_dist.train", "debug=tiny", "distribute=multiworker",
         "distribute.cluster=slurm", f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs a Slurm job step" in result.stdout + result.stderr


def test_a_peer_that_cannot_be_reached_ends_the_start_within_the_timeout(tmp_path):
    # The worker would wait for its peer until the job's time limit (TensorFlow gives no
    # bound); distribute.timeout_s ends it, naming the peer and why it cannot be reached.
    hosts = "[localhost:23456,nosuchhost.invalid:2222]"
    started = time.monotonic()
    result = run_cli(
        ["-m", "alexnet_dist.train", "debug=tiny", "distribute=multiworker",
         "distribute.cluster=hosts", f"distribute.hosts={hosts}", "distribute.task_index=0",
         "distribute.timeout_s=8", f"hydra.run.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/cache"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "worker 0 joining 2 workers did not finish within distribute.timeout_s=8 seconds: "
        "cannot reach nosuchhost.invalid:2222 (the host name 'nosuchhost.invalid' does not "
        "resolve)" in result.stderr
    ), result.stderr[-2000:]
    assert time.monotonic() - started < 60
