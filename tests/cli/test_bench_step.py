"""`alexnet-bench-step`: the train step's images/s per precision, on every layout."""

import json

import numpy as np
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # the command in a process of its own


def test_the_step_benchmark_runs_the_hybrid_on_the_pipelines_uint8_batches():
    # The benchmark feeds uint8 pixels, mirror flags and float lighting, as the input
    # pipeline does; bfloat16 included (Keras would cast the lighting to it).
    result = run_cli(
        ["-m", "alexnet_dist.cli.bench_step", "--variant", "owt", "--owt-hybrid",
         "--devices-per-replica", "2", "--width", "0.125", "--image-size", "67", "--batch", "4",
         "--steps", "2", "--policies", "float32", "mixed_bfloat16", "--xla", "off", "--json"],
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [f["policy"] for f in figures] == ["float32", "mixed_bfloat16"]
    for figure in figures:
        assert figure["images_per_sec"] > 0 and np.isfinite(figure["loss"]), figure
