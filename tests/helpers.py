"""Helpers shared by tests: processes, runs, records, weights."""

import contextlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")


def run_cli(args: list[str], timeout: float = 300, env: dict | None = None, cwd: str | None = None):
    """Runs a command of this package in a fresh Python process (bounded, so a hang fails)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )


def start_cli(command: list[str]) -> subprocess.Popen:
    """Starts a command in its own process group (killpg ends it and its children), with
    stdout and stderr piped as text; end it with `finish`."""
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a `start_cli` process; its group is killed on timeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc.returncode, out, err


def signal_when(proc: subprocess.Popen, marker: str, signum: int, timeout: float = 60) -> str:
    """Sends `signum` once `marker` appears in proc's stdout; returns the rest of its output
    (stdout, then stderr if that is piped too).

    The process must have been started with stdout=PIPE and text=True; it is
    killed (with its process group, if it leads one) if it has not ended in time.
    """
    try:
        for line in proc.stdout:
            if marker in line:
                break
        proc.send_signal(signum)
        return "".join(text for text in proc.communicate(timeout=timeout) if text)
    finally:
        if proc.poll() is None:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()


def read_metrics(run_dir, split: str) -> list[dict]:
    """The run's metrics.jsonl lines of one split."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [m for m in map(json.loads, lines) if m["split"] == split]


def assert_skipped_then_lowered(run_dir, initial_scale: float) -> None:
    """A mixed_float16 run logged every step, whose first step overflowed: skipped, scale halved."""
    train = read_metrics(run_dir, "train")
    assert [m["step"] for m in train] == [1, 2, 3, 4]
    assert train[0]["skipped_steps"] == 1 and train[0]["loss_scale"] == initial_scale / 2
    assert all(m["loss_scale"] < initial_scale for m in train)


def free_port_pair() -> int:
    """A port p such that p (the dispatcher's) and p + 1 (the worker's) are both free."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            if s.connect_ex(("localhost", port + 1)) != 0:
                return port
    raise AssertionError("no two consecutive free ports")


def wait_for_port(port: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def assert_all_reduce_logged(out: str, replicas: int):
    """The start-up line that times the gradient all-reduce: the model's bytes, a time."""
    parameters = int(re.search(r"AlexNet \w+: ([\d,]+) parameters", out).group(1).replace(",", ""))
    timed = re.search(
        rf"gradient all-reduce over {replicas} replicas: ([\d.]+) MB in ([\d.]+) ms", out
    )
    assert timed, out[-3000:]
    assert float(timed.group(1)) == round(4 * parameters / 1e6, 1)  # float32 gradients
    assert float(timed.group(2)) > 0


def checkpoint_weights(checkpoint) -> dict:
    """The model's weights in a checkpoint (no optimizer slots), by name."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/")]
    return {n: reader.get_tensor(n) for n in names if "OPTIMIZER_SLOT" not in n}


def relative_difference(a: dict, b: dict) -> float:
    """||a - b|| / ||a|| over all the weights of two checkpoint_weights."""
    import numpy as np

    assert a.keys() == b.keys()
    num = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in a)
    return (num / sum(float(np.sum(a[k].astype(np.float64) ** 2)) for k in a)) ** 0.5


# -- training runs ---------------------------------------------------------------------

# The session's tiny run (tests/conftest.py): a resume of it must build the same network.
TINY_RUN = ["debug=tiny", "model.dropout=0"]


def compose_cfg(overrides):
    """alexnet-train's composed config (a DictConfig) for these overrides."""
    from hydra import compose, initialize_config_module

    from alexnet_dist import config

    config.register()  # what alexnet_dist.cli.train does on import
    with initialize_config_module("alexnet_dist.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def train_in_process(run_dir, *overrides):
    """alexnet-train debug=tiny with `overrides`, in this process; returns its result dict.
    The data comes from the session's cache (tests/conftest.py)."""
    from alexnet_dist.cli.train import run

    return run(compose_cfg(["debug=tiny", *overrides]), str(run_dir))


# -- images and records ---------------------------------------------------------------------------


WNIDS = ["n01440764", "n01443537", "n01484850"]  # a miniature ImageNet's, sorted: label order
# The devkit numbers classes in its own order, not the sorted WNID order.
DEVKIT_IDS = {"n01440764": 3, "n01443537": 1, "n01484850": 2}


def input_spec(records, **kw):
    """A training InputSpec of `records` at the tests' small sizes, with `kw` changed."""
    from alexnet_dist.data.input_spec import InputSpec

    base = dict(
        data_dir=records, split="train", batch_size=8, crop_size=67, resize_size=72,
        training=True, seed=3, shuffle_buffer=64,
    )  # fmt: skip
    return InputSpec(**{**base, **kw})


def write_image(path, colour, fmt="JPEG", mode="RGB", size=(20, 16)):
    """A one-colour image file."""
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path, format=fmt)


def read_records(directory, split):
    """Every record of a converted split, decoded, in shard order."""
    import tensorflow as tf

    from alexnet_dist.data import schema

    records = []
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, f"{split}-*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path):
            f = schema.parse(raw)
            records.append(
                {
                    "shard": os.path.basename(path),
                    "file": f["image/filename"].numpy().decode(),
                    "label": int(f["image/class/label"]),
                    "text": f["image/class/text"].numpy().decode(),
                    "height": int(f["image/height"]),
                    "width": int(f["image/width"]),
                    "encoded": f["image/encoded"].numpy(),
                    "pixels": tf.io.decode_jpeg(f["image/encoded"]).numpy(),
                }
            )
    return records


def launch_multiworker(run_dir, *overrides, workers=2) -> subprocess.Popen:
    """launch/multiworker.sh's launcher: `workers` MultiWorkerMirroredStrategy workers of
    alexnet-train debug=tiny with `overrides` (end it with `finish`)."""
    return start_cli(
        [sys.executable, "-m", "alexnet_dist.cli.multiworker", "-n", str(workers),
         "--run-dir", str(run_dir), "debug=tiny", *overrides]
    )  # fmt: skip


def horovodrun(args, ranks=2, timeout=300) -> subprocess.CompletedProcess:
    """horovodrun with Gloo on localhost, `ranks` ranks running `args`."""
    return subprocess.run(
        [HOROVODRUN, "--gloo", "-np", str(ranks), "-H", f"localhost:{ranks}", *args],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


# -- processes of a job ------------------------------------------------------------------


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and _parent(int(e)) == pid)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`."""
    found = children(pid)
    return found + [d for c in found for d in descendants(c)]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def environ(pid: int) -> dict[str, str]:
    """The environment process `pid` was started with."""
    with open(f"/proc/{pid}/environ") as f:
        return dict(v.split("=", 1) for v in f.read().split("\0") if "=" in v)


def trainer(root: int, variable: str, value: str) -> int:
    """The training process under `root` whose environment has variable=value."""
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                # The module as an argument of its own: not a shell (sh -c "... -m
                # alexnet_dist.cli.train ...") that horovodrun starts it through.
                if "alexnet_dist.cli.train" not in f.read().split("\0"):
                    continue
            env = environ(pid)
        except OSError:
            continue
        if variable == "TF_CONFIG" and f'"index": {value}' in env.get(variable, ""):
            return pid
        if env.get(variable) == value:
            return pid
    raise AssertionError(f"no worker with {variable}={value} under {root}")


# -- the numerics driver (python -m alexnet_dist.cli.numerics) ------------------------------

STEPS, PER_REPLICA = 3, 4


def driver(backend, per_replica, out, env=None, steps=STEPS, options=()):
    """The numerics driver in a process of its own (the multi-process backends)."""
    return subprocess.Popen(
        [sys.executable, "-m", "alexnet_dist.cli.numerics", backend, str(steps),
         str(per_replica), str(out), *options],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish_driver(proc, timeout=240):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err[-3000:]


def assert_same_weights(got, want, initial, variant="paper"):
    """`got` equals `want` (relative difference < 1e-5 per tensor), and training moved
    every tensor away from `initial`."""
    import numpy as np

    from alexnet_dist.doctor.numerics import NUM_WEIGHTS, relative_differences

    assert len(got) == len(want) == NUM_WEIGHTS[variant]
    for i, (w, w0) in enumerate(zip(want, initial, strict=True)):
        assert not np.array_equal(w, w0), f"weight {i} did not train"
    for i, rel in enumerate(relative_differences(got, want)):
        assert rel < 1e-5, (i, rel)


def claim_for_this_worker(resource: str) -> None:
    """Fails unless `resource` (the test Slurm, the emulated nodes) is this session's only
    xdist worker's: their tests share one worker (xdist_group, --dist loadgroup), since two
    copies at once would fight over ports, node names and processes. A pytest that breaks
    the grouping (9.2 does: pytest-xdist#1386) fails here rather than at random."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = pathlib.Path(os.environ["ALEXNET_TEST_CACHE"]) / f"{resource}.worker"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, worker.encode())
        os.close(fd)
    except FileExistsError:
        owner = path.read_text()
        if owner != worker:
            pytest.fail(
                f"the {resource} tests run on two workers ({owner} and {worker}): pytest-xdist "
                "is not grouping them (--dist loadgroup; pytest 9.2 breaks it, "
                "pytest-xdist#1386; pyproject.toml pins pytest below it)"
            )


def write_png_bomb(path, side: int = 12000) -> None:
    """A greyscale PNG of side x side zero pixels, a few hundred KB on disk: the
    decompression bomb of docs/security.md (12000 x 12000: 144 megapixels, 432 MB as RGB).
    Written row by row, so that making it takes no such memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte 0, then the row's pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                + chunk(b"IEND", b""))  # fmt: skip


# Connects to host:port from inside the network namespace in argv[3] (a /proc/PID/ns/net
# or /run/netns/NAME file; "-" for the caller's); prints "open" or the error's name.
_PROBE = """
import ctypes, os, socket, sys
host, port, namespace = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if namespace != "-":
    fd = os.open(namespace, os.O_RDONLY)
    assert ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) == 0, ctypes.get_errno()
try:
    socket.create_connection((host, port), timeout=3).close()
    print("open")
except OSError as e:
    print(type(e).__name__)
"""


def probe(host: str, port: int, namespace: str = "-") -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE, host, str(port), namespace],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextlib.contextmanager
def other_machine_link():
    """A network namespace joined to this machine by a veth pair: (its namespace file,
    this machine's address on the link), as another machine on the network sees it."""
    tag = f"{os.getpid() % 100000}"
    name, host_end, far_end = f"probe{tag}", f"pv{tag}a", f"pv{tag}b"
    subnet = f"10.213.{os.getpid() % 250}"

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    ip("netns", "add", name)
    try:
        ip("link", "add", host_end, "type", "veth", "peer", "name", far_end)
        ip("link", "set", far_end, "netns", name)
        ip("addr", "add", f"{subnet}.1/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("-n", name, "addr", "add", f"{subnet}.2/30", "dev", far_end)
        ip("-n", name, "link", "set", far_end, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield f"/run/netns/{name}", f"{subnet}.1"
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
