"""Run the numerics driver and compare weights (shared by the distribution tests)."""

import os
import subprocess
import sys

import numpy as np

from alexnet_dist.doctor.numerics import NUM_WEIGHTS, relative_differences
from tests.helpers import REPO

STEPS, PER_REPLICA = 3, 4
DRIVER = ["-m", "alexnet_dist.doctor.numerics"]


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


def assert_same_weights(got, want, initial, variant="paper"):
    assert len(got) == len(want) == NUM_WEIGHTS[variant]
    for i, (w, w0) in enumerate(zip(want, initial, strict=True)):
        assert not np.array_equal(w, w0), f"weight {i} did not train"
    for i, rel in enumerate(relative_differences(got, want)):
        assert rel < 1e-5, (i, rel)
