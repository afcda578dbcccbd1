"""alexnet-bench-input on real JPEG records: figures printed, and the keep-up verdict."""

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def bench(records, *args):
    return run_cli(
        ["-m", "alexnet_dist.cli.bench_input", str(records), "--image-size", "67", "--resize", "72",
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
    assert float(lines["epoch start"].split()[0]) > 0
    assert float(lines["cores for 1 images/s"]) == pytest.approx(cores / rate, rel=0.01)
    assert "keeps up with 1 images/s" in result.stdout


def test_decode_only_floor_and_repeated_runs(shapes_records):
    records, _ = shapes_records
    result = bench(records, "--decode-only", "--runs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pipeline: decode only (the floor)" in result.stdout
    runs = [
        float(line.split()[2]) for line in result.stdout.splitlines() if line.startswith("run ")
    ]
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    median = float(lines["images/s"])
    assert len(runs) == 2 and median == pytest.approx(sum(runs) / 2, abs=0.06)
    spread = float(lines["spread over 2 runs"].split("%")[0])
    assert spread == pytest.approx(100 * abs(runs[0] - runs[1]) / (sum(runs) / 2), abs=0.06)


def test_says_when_the_pipeline_cannot_keep_up(shapes_records, tmp_path):
    records, _ = shapes_records
    result = bench(records, "--target", "1e12", "--crop", "inception")
    assert result.returncode == 3
    assert "input-bound:" in result.stdout and "cores would keep up" in result.stdout
    # Converted without --resize: converting at 256 is one of the remedies.
    assert "convert with --resize 256" in result.stdout
    missing = run_cli(["-m", "alexnet_dist.cli.bench_input", str(tmp_path)], timeout=120)
    assert missing.returncode == 1 and str(tmp_path) in missing.stderr
    too_big = run_cli(["-m", "alexnet_dist.cli.bench_input", str(records), "--batch-size", "500"])
    assert too_big.returncode == 1 and "lower --batch-size" in too_big.stderr


def test_records_already_converted_small_are_not_told_to_convert_again(tmp_path):
    from PIL import Image

    from alexnet_dist.data.converter import convert_tree

    for c in range(2):
        folder = tmp_path / "images" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (96, 80), (90 * c, 20 * i, 60)).save(folder / f"{i}.jpg")
    convert_tree(str(tmp_path / "images"), str(tmp_path / "records"), "train", 2, 1, resize=72)
    result = bench(tmp_path / "records", "--target", "1e12")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "input-bound:" in result.stdout
    assert "--resize 256" not in result.stdout and "tf.data service" in result.stdout
