"""Horovod through horovodrun with Gloo on localhost: the real build, two real processes.

The 2014 hybrid over ranks is in test_rank_group.py, elastic Horovod in test_elastic.py.

`make test` builds Horovod first (make horovod), so these run in CI; they fail,
not skip, when Horovod is missing.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from alexnet_dist.doctor.numerics import load
from tests.helpers import (
    PER_REPLICA,
    REPO,
    STEPS,
    alive,
    assert_all_reduce_logged,
    assert_same_weights,
    assert_skipped_then_lowered,
    descendants,
    horovodrun,
    run_cli,
    trainer,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def test_horovod_is_built_with_tensorflow_gloo_and_mpi():
    # MPI: what lets Slurm start the ranks itself (srun --mpi=pmix, tests/slurm).
    check = "import horovod.tensorflow as hvd; print(hvd.gloo_built(), hvd.mpi_built())"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"], result.stdout


def test_two_ranks_match_one_replica(single_weights, tmp_path):
    out = tmp_path / "w.npz"
    driver = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(PER_REPLICA)]
    result = horovodrun([sys.executable, *driver, str(out)])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *single_weights)


def test_two_ranks_with_towers_on_two_devices_each_match_one_device(single_weights, tmp_path):
    # The paper's split under data parallelism: each rank's towers on its two logical
    # CPUs, each tower's gradients all-reduced among the ranks' devices of that tower.
    out = tmp_path / "w.npz"
    driver = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(PER_REPLICA)]
    result = horovodrun([sys.executable, *driver, str(out), "towers", "placement"])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *single_weights)
    for rank in (0, 1):
        ran = json.loads((tmp_path / f"w.npz.{rank}.placement.json").read_text())
        assert ran["devices"] == ["/cpu:0", "/cpu:1"]
        # One grouped all-reduce per tower, each on its tower's device.
        for device in ("CPU:0", "CPU:1"):
            assert "HorovodGroupedAllreduce" in ran["ops"][device], (rank, device)


def test_two_ranks_of_the_2014_hybrid_on_two_devices_each_match_one_device(
    single_owt_weights, tmp_path
):
    # Data parallelism over hybrid replicas: each rank splits its 8 images over its two
    # logical CPUs in the convolutions and holds half of each fully connected layer; the
    # ranks all-reduce the conv gradients and each shard's with the other rank's.
    out = tmp_path / "w.npz"
    driver = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(2 * PER_REPLICA)]
    result = horovodrun([sys.executable, *driver, str(out), "hybrid2", "placement"])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert_same_weights(load(out), *single_owt_weights, variant="owt")
    for rank in (0, 1):
        ran = json.loads((tmp_path / f"w.npz.{rank}.placement.json").read_text())
        assert ran["devices"] == ["/cpu:0", "/cpu:1"]
        for device in ("CPU:0", "CPU:1"):  # each shard's gradients all-reduced on its device
            assert "HorovodGroupedAllreduce" in ran["ops"][device], (rank, device)


def test_fp16_allreduce_compresses_the_gradients(single_weights, tmp_path):
    out = tmp_path / "w.npz"
    driver = ["-m", "alexnet_dist.cli.numerics", "horovod", str(STEPS), str(PER_REPLICA)]
    result = horovodrun([sys.executable, *driver, str(out), "fp16"])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    got, (want, _) = load(out), single_weights
    rel = [np.linalg.norm(g - w) / np.linalg.norm(w) for g, w in zip(got, want, strict=True)]
    # float16 keeps ~3 decimal digits: close to the exact sum, but not equal to it.
    assert max(rel) < 1e-2
    assert max(rel) > 1e-6


def test_launcher_trains_with_one_set_of_outputs_and_both_ranks_skip_the_same_steps(tmp_path):
    # launch/horovod.sh, 2 ranks: only rank 0 writes and reports. Under mixed_float16 a scale
    # of 2**40 overflows float16: both ranks must skip the same steps together (or hang).
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [os.path.join(REPO, "launch", "horovod.sh"), "-np", "2", "-H", "localhost:2", "--gloo",
         "--run-dir", str(run_dir), "--", "debug=tiny", "trainer.max_steps=4",
         "trainer.log_every_steps=1", "precision=mixed_float16",
         "precision.initial_loss_scale=1099511627776"],
        cwd=REPO, env={**os.environ, "VENV_BIN": os.path.dirname(sys.executable)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    assert "2 replicas" in result.stdout
    assert result.stdout.count("finished at step 4") == 1  # only rank 0 reports
    assert_all_reduce_logged(result.stdout, replicas=2)
    ckpts = sorted(os.path.basename(p) for p in glob.glob(f"{run_dir}/**/*.index", recursive=True))
    assert ckpts == ["best-4.index", "ckpt-4.index"]
    events = glob.glob(f"{run_dir}/tensorboard/*/events.out.tfevents.*")
    assert len(events) == 3  # hparams, train and val, from rank 0 only
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "worker-1.log").exists()
    assert_skipped_then_lowered(run_dir, 2.0**40)


def test_missing_horovod_says_how_to_install(tmp_path):
    fake = tmp_path / "fake" / "horovod"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no horovod here')\n")
    result = run_cli(
        ["-m", "alexnet_dist.cli.train", "debug=tiny", "distribute=horovod",
         f"hydra.run.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"],
        env={"PYTHONPATH": str(tmp_path / "fake")},
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "make horovod" in result.stdout + result.stderr
    assert not np.any([os.path.exists(tmp_path / "run" / "checkpoints")])


def test_a_killed_rank_ends_the_job(tmp_path):
    proc = subprocess.Popen(
        [os.path.join(REPO, "launch", "horovod.sh"), "-np", "2", "-H", "localhost:2", "--gloo",
         "--run-dir", str(tmp_path / "run"), "--", "debug=tiny",
         "trainer.max_steps=100000", "trainer.epochs=100000"],
        cwd=REPO, env={**os.environ, "VENV_BIN": os.path.dirname(sys.executable)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        for line in proc.stdout:  # wait until the ranks are training
            if " step " in line or time.monotonic() > deadline:
                break
        ranks = sorted(pid for pid in descendants(proc.pid) if _is_training_rank(pid))
        assert len(ranks) == 2
        killed_at = time.monotonic()
        os.kill(ranks[-1], signal.SIGKILL)
        code = proc.wait(timeout=60)
        assert time.monotonic() - killed_at < 60
        assert code != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _is_training_rank(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"alexnet_dist.cli.train" in argv and not any(a.endswith(b"horovodrun") for a in argv)


BIN = os.path.dirname(sys.executable)


@pytest.mark.security
@pytest.mark.parametrize("elastic", [False, True], ids=["static", "elastic"])
def test_the_ranks_stop_when_horovodrun_is_killed_outright(tmp_path, elastic):
    # launch/horovod.sh execs horovodrun. SIGKILL of it runs none of its cleanup: Horovod's
    # own middleman process (safe_shell_exec) sees its pipe close and sends each rank
    # SIGTERM, and the rank stops as when preempted. Nothing is left under PID 1. The
    # elastic driver starts its ranks through the same middleman.
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost:1\n127.0.0.1:1\n")
    where = ["-H", "localhost:2"]
    overrides = ["distribute.elastic=true"] if elastic else []
    if elastic:
        where = ["--min-np", "1", "--max-np", "2", "--host-discovery-script",
                 os.path.join(REPO, "launch", "discover_hosts.sh")]  # fmt: skip
    proc = subprocess.Popen(
        [os.path.join(REPO, "launch", "horovod.sh"), "--gloo", "-np", "2", *where,
         "--run-dir", str(tmp_path / "run"), "--", "debug=tiny", "trainer.epochs=100000",
         "trainer.log_every_steps=1", *overrides],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "VENV_BIN": BIN,
             "ALEXNET_HOSTS_FILE": str(hosts)},
        start_new_session=True,
    )  # fmt: skip
    started = []
    try:
        deadline = time.monotonic() + 180
        for line in proc.stdout:
            if " step " in line or time.monotonic() > deadline:
                break
        started = descendants(proc.pid)  # middlemen, shells and the ranks
        assert all(trainer(proc.pid, "HOROVOD_RANK", rank) in started for rank in ("0", "1"))
        os.kill(proc.pid, signal.SIGKILL)  # horovodrun itself (the script exec'd it)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 120
        while any(alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [(_cmdline(p), p) for p in started if alive(p)]
    finally:
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
