"""alexnet-bench-input on real JPEG records: figures printed, and the keep-up verdict."""

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def bench(records, *args):
    return run_cli(
        ["-m", "alexnet_dist.bench_input", str(records), "--image-size", "67", "--resize", "72",
         "--batch-size", "8", "--warmup", "1", "--steps", "4", "--shuffle-buffer", "50", *args],
        timeout=300,
    )  # fmt: skip


def test_prints_images_per_second_and_per_core(shapes_records):
    records, _ = shapes_records
    result = bench(records, "--target", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    rate, per_core, cores = (
        float(lines["images/s"]),
        float(lines["images/s per core"]),
        int(lines["cores"]),
    )
    assert rate > 0 and per_core == pytest.approx(rate / cores, rel=1e-3)
    assert "4 batches timed after 1" in result.stdout
    assert "keeps up with 1 images/s" in result.stdout


def test_says_when_the_pipeline_cannot_keep_up(shapes_records, tmp_path):
    records, _ = shapes_records
    result = bench(records, "--target", "1e12", "--crop", "inception")
    assert result.returncode == 3
    assert "input-bound:" in result.stdout and "cores would keep up" in result.stdout
    missing = run_cli(["-m", "alexnet_dist.bench_input", str(tmp_path)], timeout=120)
    assert missing.returncode == 1 and str(tmp_path) in missing.stderr
