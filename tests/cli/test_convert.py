"""`alexnet-convert`: what it prints, and errors without a traceback."""

import pytest
import tensorflow as tf
from PIL import Image

from tests.helpers import WNIDS, read_records, run_cli

pytestmark = pytest.mark.slow  # the command in a process of its own


def test_cli_reports_errors_without_a_traceback(tree, tmp_path):
    out = tmp_path / "records"
    ok = run_cli(["-m", "alexnet_dist.cli.convert", str(tree), str(out), "--num-shards", "2"])
    assert ok.returncode == 0, ok.stderr
    assert "15 images of 3 classes -> 2 'train' shards" in ok.stdout
    again = run_cli(["-m", "alexnet_dist.cli.convert", str(tree), str(out), "--num-shards", "2"])
    assert again.returncode == 2
    assert "alexnet-convert: error:" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def test_cli_reports_counts_per_class_and_repairs(imagenet, tmp_path):
    root, _ = imagenet
    cmyk = root / "train" / WNIDS[0] / "cmyk.JPEG"
    Image.new("CMYK", (30, 30), (0, 255, 0, 0)).save(cmyk, format="JPEG")
    grey = root / "train" / WNIDS[1] / "grey.JPEG"
    Image.new("L", (30, 30), 128).save(grey, format="JPEG")
    png = root / "train" / WNIDS[2] / "png.JPEG"
    Image.new("RGB", (30, 30), (1, 2, 3)).save(png, format="PNG")
    result = run_cli(["-m", "alexnet_dist.cli.convert", str(root / "train"), str(tmp_path / "r"),
                      "--num-shards", "2", "--no-progress"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "15 images of 3 classes -> 2 'train' shards" in out
    assert "images per class: 5 to 5" in out
    assert f"repaired {WNIDS[0]}/cmyk.JPEG: JPEG CMYK -> RGB JPEG" in out
    assert f"repaired {WNIDS[1]}/grey.JPEG: JPEG L -> RGB JPEG" in out
    assert f"repaired {WNIDS[2]}/png.JPEG: PNG RGB -> RGB JPEG" in out
    assert "3 repaired, 0 skipped" in out
    records = {r["file"]: r for r in read_records(tmp_path / "r", "train")}
    for name in (f"{WNIDS[0]}/cmyk.JPEG", f"{WNIDS[1]}/grey.JPEG", f"{WNIDS[2]}/png.JPEG"):
        assert records[name]["pixels"].shape == (30, 30, 3)
        assert tf.io.decode_jpeg(records[name]["encoded"]).shape[-1] == 3
