"""The project's Horovod build (tools/build_horovod.sh): its rendezvous takes only requests
signed with the job's key (tools/horovod/rendezvous-auth.patch).

Stock Horovod 0.28.1 stores what anyone who reaches horovodrun's rendezvous port PUTs,
and elastic mode unpickles the body of a PUT to /worker_addresses/. Here a real
horovodrun job runs; the tests talk to its rendezvous as a stranger would (no key, a
wrong key) and as a rank does (the job's key, from a rank's environment).
"""

import base64
import hashlib
import hmac
import http.client
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import HOROVODRUN, REPO, TINY_RUN, environ, trainer

pytestmark = [pytest.mark.security, pytest.mark.multiprocess, pytest.mark.slow]

KEY_ENV = "HOROVOD_GLOO_RENDEZVOUS_KEY"


class _Payload:
    """Unpickling it creates a file: what an attacker's pickle would do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _request(address, port, method, path, body=b"", signature=None) -> int:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    headers = {"Content-Length": str(len(body))}
    if signature is not None:
        headers["X-Horovod-Signature"] = signature
    conn.request(method, path, body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def _rendezvous(env: dict) -> tuple[str, int]:
    return env["HOROVOD_GLOO_RENDEZVOUS_ADDR"], int(env["HOROVOD_GLOO_RENDEZVOUS_PORT"])


def _sign(key: str, method: str, path: str, body: bytes = b"") -> str:
    message = method.encode() + b" " + path.encode() + b"\n" + body
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _job(tmp_path, launcher: list[str], overrides: list[str], env: dict | None = None):
    log = tmp_path / "job.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [HOROVODRUN, "--gloo", *launcher, sys.executable, "-m", "alexnet_dist.cli.train",
             "distribute=horovod", *TINY_RUN, *overrides, "trainer.log_every_steps=1",
             f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while not re.search(r"step 1/", log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    rank = trainer(proc.pid, "HOROVOD_RANK", "0")
    return proc, log, rank


def _finish(proc, log) -> str:
    try:
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 0, text[-4000:]
    return text


def test_the_elastic_rendezvous_refuses_an_unsigned_pickle_and_training_goes_on(tmp_path):
    # The README's elastic command, one host. While it trains, a stranger PUTs a pickled
    # object to the path whose body the driver unpickles: refused (403), not unpickled.
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost:1\n")
    proc, log, rank = _job(
        tmp_path,
        # (--network-interface: else elastic horovodrun waits for 2 hosts to compare theirs)
        ["-np", "1", "--min-np", "1", "--max-np", "1", "--network-interface", "lo",
         "--host-discovery-script", os.path.join(REPO, "launch", "discover_hosts.sh")],
        ["distribute.elastic=true", "trainer.epochs=30"],
        {"ALEXNET_HOSTS_FILE": str(hosts)},
    )  # fmt: skip
    try:
        env = environ(rank)
        address, port = _rendezvous(env)
        key = env[KEY_ENV]
        assert len(key) == 64
        # The key reaches the rank by inheritance, not on a command line others can read.
        for pid in [proc.pid, rank]:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert key.encode() not in f.read()
        marker = tmp_path / "unpickled"
        body = base64.b64encode(pickle.dumps(_Payload(marker)))
        path = "/worker_addresses/localhost:0"
        assert _request(address, port, "PUT", path, body) == 403
        wrong = _sign("0" * 64, "PUT", path, body)
        assert _request(address, port, "PUT", path, body, wrong) == 403
        # Signed over another body: the signature covers the body too.
        other = _sign(key, "PUT", path, b"something else")
        assert _request(address, port, "PUT", path, body, other) == 403
        assert _request(address, port, "GET", "/global/0") == 403
        # With the job's key a request is served (an absent key: 404, not 403).
        assert _request(address, port, "GET", "/nothing/here", b"",
                        _sign(key, "GET", "/nothing/here")) == 404  # fmt: skip
        assert not marker.exists()
    finally:
        text = _finish(proc, log)
    assert "refused a PUT request to /worker_addresses/localhost:0" in text
    assert "finished at step 300:" in text
    assert not marker.exists()


def test_the_gloo_rendezvous_keeps_the_ranks_addresses_from_strangers(tmp_path):
    # Plain horovodrun --gloo, 2 ranks: the rendezvous where the ranks publish their
    # addresses. A stranger can neither read them, overwrite them nor delete them.
    proc, log, rank = _job(tmp_path, ["-np", "2"], ["trainer.epochs=20"])
    try:
        env = environ(rank)
        address, port = _rendezvous(env)
        for method in ["GET", "DELETE"]:
            assert _request(address, port, method, "/global/0") == 403
        assert _request(address, port, "PUT", "/global/0", b"127.0.0.1:1") == 403
        signed = _sign(env[KEY_ENV], "GET", "/nothing/here")
        assert _request(address, port, "GET", "/nothing/here", b"", signed) == 404
    finally:
        text = _finish(proc, log)
    assert "finished at step 200:" in text


def test_a_rank_without_the_key_is_refused_with_an_error_that_says_so(monkeypatch):
    # A process that joins a job's rendezvous without its key (or with another job's)
    # stops at hvd.init() with a message that names the variable.
    from horovod.runner.http import signing
    from horovod.runner.http.http_server import RendezvousServer

    monkeypatch.setenv(KEY_ENV, "a" * 64)  # the job's key, which the server reads
    server = RendezvousServer()
    port = server.start()
    try:
        from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

        server.init(get_host_assignments(parse_hosts("localhost:1"), 1))
        script = "import horovod.tensorflow as hvd; hvd.init(); print('size', hvd.size())"
        env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
        env.update({
            "HOROVOD_GLOO_RENDEZVOUS_ADDR": "127.0.0.1", "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
            "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
            "HOROVOD_GLOO_IFACE": "lo", "HOROVOD_HOSTNAME": "localhost", "HOROVOD_RANK": "0",
            "HOROVOD_SIZE": "1", "HOROVOD_LOCAL_RANK": "0", "HOROVOD_LOCAL_SIZE": "1",
            "HOROVOD_CROSS_RANK": "0", "HOROVOD_CROSS_SIZE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
        })  # fmt: skip
        for key, why in [(None, "not set"), ("b" * 64, "not the job's key")]:
            if key:
                env[KEY_ENV] = key
            done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                  text=True, timeout=120)  # fmt: skip
            assert done.returncode != 0
            assert f"{KEY_ENV} is {why}" in done.stdout + done.stderr, done.stderr[-2000:]
        env[KEY_ENV] = signing.job_key()
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "size 1" in done.stdout
    finally:
        server.stop()
