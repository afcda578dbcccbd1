"""Helpers shared by tests."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
