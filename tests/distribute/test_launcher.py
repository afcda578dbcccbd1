"""launch/multiworker.sh's launcher: real worker processes of the real entry point, one
set of outputs, and a job that ends when a worker dies or is signalled."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from alexnet_dist.distribute import launcher, netns
from tests.helpers import (
    alive,
    assert_all_reduce_logged,
    assert_skipped_then_lowered,
    children,
    environ,
    finish,
    launch_multiworker,
    probe,
    signal_when,
    start_cli,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def training_workers(proc) -> list[int]:
    """The launcher's two workers, once they are training (a step line)."""
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if " step " in line or time.monotonic() > deadline:
            break
    workers = children(proc.pid)
    assert len(workers) == 2
    return workers


def test_two_workers_train_write_one_set_of_outputs_and_resume(tmp_path):
    # Under mixed_float16 a scale of 2**40 overflows float16: both workers must skip the
    # same steps together (or hang).
    run_dir = tmp_path / "run"
    code, out, err = finish(
        launch_multiworker(run_dir, "trainer.max_steps=4", "trainer.log_every_steps=1",
                           "precision=mixed_float16", "precision.initial_loss_scale=1099511627776")
    )  # fmt: skip
    assert code == 0, err[-4000:]
    assert_skipped_then_lowered(run_dir, 2.0**40)
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
        launch_multiworker(run_dir, "trainer.max_steps=12", "distribute.collective=ring",
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


def test_a_killed_worker_ends_the_job(tmp_path):
    proc = launch_multiworker(tmp_path / "run", "trainer.max_steps=100000", "trainer.epochs=100000")
    try:
        workers = training_workers(proc)
        killed_at = time.monotonic()
        os.kill(max(workers), signal.SIGKILL)  # the later-started one: worker 1
        code = proc.wait(timeout=60)
        assert time.monotonic() - killed_at < 60
        assert code != 0
        assert "exited with 137" in proc.stderr.read()
        assert not any(os.path.exists(f"/proc/{w}") and alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigterm_stops_every_worker_at_the_same_step_with_a_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = launch_multiworker(run_dir, "trainer.max_steps=100000", "trainer.epochs=100000",
                  "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=100000")  # fmt: skip
    out = signal_when(proc, " step 3/", signal.SIGTERM)  # the launcher forwards it to both workers
    assert proc.returncode == 75, out[-3000:]
    stopped = int(out.split("stopped at step ")[1].split()[0])
    ckpts = glob.glob(f"{run_dir}/**/*.index", recursive=True)
    assert [os.path.basename(c) for c in ckpts] == [f"ckpt-{stopped}.index"]
    assert "Traceback" not in (run_dir / "worker-1.log").read_text()


@pytest.mark.security
def test_workers_stop_when_the_launcher_is_killed_outright(tmp_path):
    # SIGKILL (the OOM killer, kill -9) runs none of the launcher's cleanup: the kernel
    # sends each worker SIGTERM (distribute/parent_death.py), and it stops as when
    # preempted, with a checkpoint, instead of training on under PID 1.
    run_dir = tmp_path / "run"
    proc = launch_multiworker(run_dir, "trainer.max_steps=100000", "trainer.epochs=100000")
    workers = []
    try:
        workers = training_workers(proc)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 120
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(map(alive, workers))
        assert "SIGTERM received: stopped at step" in (run_dir / "worker-1.log").read_text()
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_supervise_stops_a_job_that_runs_past_its_timeout_and_gives_back_the_signals():
    before = signal.getsignal(signal.SIGINT)
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    start = time.monotonic()
    assert launcher.supervise(procs, "rank", timeout=1) == launcher.EXIT_TIMEOUT
    assert time.monotonic() - start < 30
    assert all(p.poll() is not None for p in procs)  # both stopped
    assert signal.getsignal(signal.SIGINT) is before


def test_supervise_returns_the_first_failed_process_code_and_stops_the_rest():
    procs = [subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sh", "-c", "exit 3"])]
    assert launcher.supervise(procs, "rank") == 3
    assert procs[0].poll() is not None


def test_supervise_until_ends_with_the_served_process_and_fails_when_a_server_ends_first():
    server, command = subprocess.Popen(["sleep", "60"]), subprocess.Popen(["true"])
    assert launcher.supervise([server, command], ["server", "command"], until=1) == 0
    assert server.poll() is not None  # stopped with the job
    server, command = subprocess.Popen(["true"]), subprocess.Popen(["sleep", "60"])
    assert launcher.supervise([server, command], ["server", "command"], until=1) == 1
    assert command.poll() is not None


def _worker_ports(worker: int) -> list[int]:
    cluster = json.loads(environ(worker)["TF_CONFIG"])["cluster"]["worker"]
    return [int(address.rsplit(":", 1)[1]) for address in cluster]


@pytest.mark.security
def test_the_workers_ports_answer_nobody_outside_their_namespace(tmp_path, other_machine):
    # TensorFlow's servers listen on every interface and run what they are sent. As root
    # the launcher puts its workers in a network namespace with loopback alone: their
    # ports answer inside it, and neither from another machine nor from this one.
    namespace, address = other_machine
    proc = launch_multiworker(tmp_path / "run", "trainer.max_steps=100000", "trainer.epochs=100000")
    workers = []
    try:
        workers = training_workers(proc)
        inside = f"/proc/{workers[0]}/ns/net"
        assert netns.namespace_of(workers[0]) == netns.namespace_of(workers[1])
        assert netns.namespace_of(workers[0]) == netns.namespace_of(proc.pid)
        assert netns.namespace_of(workers[0]) != netns.namespace_of()
        for port in _worker_ports(workers[0]):
            assert probe("127.0.0.1", port, inside) == "open"
            assert probe(address, port, namespace) == "ConnectionRefusedError"
            assert probe("127.0.0.1", port) == "ConnectionRefusedError"
    finally:
        _end(proc, workers)

    # --share-network: the same probe from the other machine reaches a worker, which is
    # what the namespace prevents.
    proc = start_cli([sys.executable, "-m", "alexnet_dist.cli.multiworker", "-n", "2",
                      "--share-network", "--run-dir", str(tmp_path / "shared"), "debug=tiny",
                      "trainer.max_steps=100000", "trainer.epochs=100000"])  # fmt: skip
    workers = []
    try:
        workers = training_workers(proc)
        assert netns.namespace_of(workers[0]) == netns.namespace_of()
        assert probe(address, _worker_ports(workers[0])[0], namespace) == "open"
    finally:
        _end(proc, workers)


def _end(proc, workers) -> None:
    """Kills the launcher; its workers stop with it (parent_death), or are killed."""
    proc.kill()
    proc.communicate(timeout=120)
    deadline = time.monotonic() + 120
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in workers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
