"""The tf.data service: a real dispatcher and worker (launch/data_service.sh) run the
training input pipeline, and the trainer reads its batches from them."""

import os
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_module

from alexnet_dist.cli.train import run
from alexnet_dist.distribute import netns
from tests.helpers import REPO, alive, children, free_port_pair, probe, wait_for_port

pytestmark = pytest.mark.slow


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(service_pid: int) -> int:
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/cmdline") as f:
                    cmd = f.read().split("\0")
                with open(f"/proc/{stat}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == service_pid and "worker" in cmd:
                return int(stat)
    raise AssertionError("no tf.data service worker was started")


def test_training_reads_its_batches_from_the_service(tmp_path, shapes_records):
    records, cache = shapes_records
    port = free_port_pair()
    service = subprocess.Popen(
        [os.path.join(REPO, "launch", "data_service.sh"), "-n", "1", "-p", str(port),
         "-w", str(tmp_path / "dispatcher")],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHON": sys.executable},
        start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port + 1)  # the worker's: it starts after the dispatcher
        assert service.poll() is None, service.communicate()[1][-2000:]
        worker = worker_pid(service.pid)
        before = cpu_seconds(worker)
        with initialize_config_module("alexnet_dist.conf", version_base="1.3"):
            cfg = compose(
                config_name="config",
                overrides=[
                    "debug=tiny", "data=tfrecord", f"data.dir={records}", "data.resize_size=72",
                    "data.std=[58.4,57.1,57.4]", "trainer.max_steps=6",
                    f"data.service=grpc://localhost:{port}",
                ],
            )  # fmt: skip
        result = run(cfg, str(tmp_path / "run"))
        assert result["step"] == 6
        # The decoding and augmentation ran in the service's worker process.
        # The dispatcher's journal holds the run's job, and the service's worker did
        # the decoding and augmentation.
        journal = b"".join(p.read_bytes() for p in (tmp_path / "dispatcher").rglob("journal_*"))
        assert b"-train-epoch0-worker0of1" in journal
        assert cpu_seconds(worker) - before > 0.05
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.communicate(timeout=30)


@pytest.mark.security
def test_the_service_ends_when_its_launcher_is_killed_outright():
    """SIGKILL of launch/data_service.sh runs no trap: the dispatcher and workers end
    anyway (--die-with-parent) instead of running on under PID 1."""
    port = free_port_pair()
    service = subprocess.Popen(
        [os.path.join(REPO, "launch", "data_service.sh"), "-n", "1", "-p", str(port)],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHON": sys.executable},
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    started = []
    try:
        wait_for_port(port)
        wait_for_port(port + 1)
        started = children(service.pid)
        assert len(started) == 2  # the dispatcher and the worker
        service.kill()
        service.wait()
        deadline = time.monotonic() + 30
        while any(map(alive, started)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(alive, started)), [p for p in started if alive(p)]
    finally:
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# A trainer's stand-in: reads 10 elements through the service, writes where it runs, waits
# for the test to probe the ports, and ends with the code the test expects back.
_CLIENT = """
import os, pathlib, sys, time
import tensorflow as tf
port, ready, release = int(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ds = tf.data.Dataset.range(10).apply(tf.data.experimental.service.distribute(
    "parallel_epochs", f"grpc://localhost:{port}", job_name="probe"))
got = sorted(int(x) for x in ds)
assert got == list(range(10)), got
ready.write_text(str(os.getpid()))
while not release.exists():
    time.sleep(0.1)
sys.exit(3)
"""


@pytest.mark.security
def test_a_service_for_one_command_is_reachable_by_that_command_alone(tmp_path, other_machine):
    """`launch/data_service.sh -- COMMAND`: the service and the command share a network
    namespace with loopback alone; the command gets its batches, nothing outside reaches
    the servers, and the command's exit code is the script's."""
    namespace, address = other_machine
    ready, release = tmp_path / "ready", tmp_path / "release"
    port = free_port_pair()
    script = tmp_path / "client.py"
    script.write_text(_CLIENT)
    service = subprocess.Popen(
        [os.path.join(REPO, "launch", "data_service.sh"), "-n", "1", "-p", str(port), "--",
         sys.executable, str(script), str(port), str(ready), str(release)],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHON": sys.executable},
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert service.poll() is None, service.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the command got no elements from the service"
            time.sleep(0.2)
        inside = f"/proc/{ready.read_text()}/ns/net"
        assert netns.namespace_of(int(ready.read_text())) != netns.namespace_of()
        for p in (port, port + 1):  # the dispatcher's and the worker's
            assert probe("127.0.0.1", p, inside) == "open"
            assert probe("127.0.0.1", p) == "ConnectionRefusedError"
            assert probe(address, p, namespace) == "ConnectionRefusedError"
        started = children(service.pid)
        assert len(started) == 3  # the dispatcher, the worker and the command
        release.touch()
        out = service.communicate(timeout=60)[0]
        assert service.returncode == 3, out[-3000:]
        assert not any(map(alive, started)), "the service outlived its command"
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.communicate()
