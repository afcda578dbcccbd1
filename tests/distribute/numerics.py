"""Run the numerics driver and compare weights (shared by the distribution tests)."""

import os
import subprocess
import sys

import numpy as np

from tests.helpers import REPO

STEPS, PER_REPLICA = 3, 4
DRIVER = ["-m", "tests.distribute.numerics_driver"]


def driver(backend, per_replica, out, env=None, steps=STEPS, options=()):
    return subprocess.Popen(
        [sys.executable, *DRIVER, backend, str(steps), str(per_replica), str(out), *options],
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
