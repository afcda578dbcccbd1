import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_dist.data import schema
from alexnet_dist.data.converter import BadImageError, ConversionError, convert_tree
from tests.helpers import run_cli


def _image(path, colour, fmt="JPEG", mode="RGB", size=(20, 16)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path, format=fmt)


@pytest.fixture
def tree(tmp_path):
    """3 classes x 5 JPEGs, each image a distinct colour."""
    root = tmp_path / "images"
    for c, name in enumerate(["n01", "n02", "n03"]):
        for i in range(5):
            _image(str(root / name / f"img_{i}.JPEG"), (40 * c, 30 * i, 200))
    return root


def read_records(directory, split):
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


def test_round_trip_every_image_once_with_its_label(tree, tmp_path):
    out = tmp_path / "records"
    report = convert_tree(str(tree), str(out), "train", num_shards=4, workers=2)
    records = read_records(out, "train")
    assert sorted(r["file"] for r in records) == sorted(
        f"{c}/img_{i}.JPEG" for c in ("n01", "n02", "n03") for i in range(5)
    )
    labels = schema.read_labels(str(out))
    assert labels == ["n01", "n02", "n03"]
    for r in records:
        assert labels[r["label"]] == r["text"] == r["file"].split("/")[0]
        assert (r["height"], r["width"]) == (16, 20) == r["pixels"].shape[:2]
        assert r["encoded"] == (tree / r["file"]).read_bytes()  # RGB JPEGs are kept as they are
    # Shards are disjoint and complete, and the report says what they hold.
    by_shard = {}
    for r in records:
        by_shard.setdefault(r["shard"], []).append(r["file"])
    assert len(by_shard) == 4
    assert sum(len(v) for v in by_shard.values()) == len(set(r["file"] for r in records)) == 15
    assert report == json.loads((out / "train.json").read_text())
    assert report["num_examples"] == 15
    assert report["shards"] == {k: len(v) for k, v in by_shard.items()}
    assert report["classes"] == {"n01": 5, "n02": 5, "n03": 5}


def test_same_input_gives_byte_identical_shards(tree, tmp_path):
    convert_tree(str(tree), str(tmp_path / "a"), "train", 3, workers=2)
    convert_tree(str(tree), str(tmp_path / "b"), "train", 3, workers=1)
    names = sorted(n for n in os.listdir(tmp_path / "a") if n.endswith(".tfrecord"))
    assert len(names) == 3
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_second_split_reuses_the_label_map(tree, tmp_path):
    out = tmp_path / "records"
    convert_tree(str(tree), str(out), "train", 2, workers=1)
    val = tmp_path / "val"
    _image(str(val / "n03" / "v.JPEG"), (1, 2, 3))
    convert_tree(str(val), str(out), "val", 1, workers=1)
    (record,) = read_records(out, "val")
    assert record["label"] == 2 and record["text"] == "n03"

    stranger = tmp_path / "stranger"
    _image(str(stranger / "n99" / "x.JPEG"), (1, 2, 3))
    with pytest.raises(ConversionError, match=r"\['n99'\].*not in the label map"):
        convert_tree(str(stranger), str(out), "test", 1, workers=1)


def test_non_jpeg_and_non_rgb_files_are_repaired(tree, tmp_path):
    _image(str(tree / "n01" / "png_named.JPEG"), (10, 20, 30), fmt="PNG")
    _image(str(tree / "n02" / "grey.JPEG"), (90, 0, 0), mode="L")
    _image(str(tree / "n03" / "cmyk.JPEG"), (0, 0, 0), mode="CMYK")
    out = tmp_path / "records"
    report = convert_tree(str(tree), str(out), "train", 2, workers=1)
    repaired = {r["file"]: r["repair"] for r in report["repaired"]}
    assert repaired == {
        "n01/png_named.JPEG": "PNG RGB -> RGB JPEG",
        "n02/grey.JPEG": "JPEG L -> RGB JPEG",
        "n03/cmyk.JPEG": "JPEG CMYK -> RGB JPEG",
    }
    records = {r["file"]: r for r in read_records(out, "train")}
    assert all(r["pixels"].shape[2] == 3 for r in records.values())
    assert np.abs(records["n01/png_named.JPEG"]["pixels"].astype(int) - (10, 20, 30)).max() <= 3


def test_corrupt_file_is_named_and_nothing_is_written(tree, tmp_path):
    bad = tree / "n02" / "broken.JPEG"
    good = io.BytesIO()
    Image.new("RGB", (20, 20), (5, 5, 5)).save(good, format="JPEG")
    bad.write_bytes(good.getvalue()[:100])  # truncated JPEG
    (tree / "n01" / "notes.txt").write_text("not an image")
    out = tmp_path / "records"
    with pytest.raises(BadImageError, match="broken.JPEG|notes.txt") as info:
        convert_tree(str(tree), str(out), "train", 2, workers=2)
    assert "--skip-bad" in str(info.value)
    assert not out.exists() or not [n for n in os.listdir(out) if not n.startswith(".")]

    report = convert_tree(str(tree), str(out), "train", 2, workers=2, skip_bad=True)
    assert sorted(s["file"] for s in report["skipped"]) == ["n01/notes.txt", "n02/broken.JPEG"]
    assert report["num_examples"] == 15


def test_existing_output_is_refused_unless_overwrite(tree, tmp_path):
    out = tmp_path / "records"
    convert_tree(str(tree), str(out), "train", 3, workers=1)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    with pytest.raises(ConversionError, match="already holds the 'train' split.*--overwrite"):
        convert_tree(str(tree), str(out), "train", 2, workers=1)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before

    convert_tree(str(tree), str(out), "train", 2, workers=1, overwrite=True)
    shards = sorted(n for n in os.listdir(out) if n.endswith(".tfrecord"))
    assert shards == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert len(read_records(out, "train")) == 15


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "has no class folders"),
        (lambda p: (p / "e" / "n01").mkdir(parents=True) or p / "e", "no image files"),
    ],
)
def test_missing_or_empty_input_is_named(tmp_path, make, match):
    src = make(tmp_path)
    with pytest.raises(ConversionError, match=match) as info:
        convert_tree(str(src), str(tmp_path / "out"), "train", 1)
    assert str(src) in str(info.value)


def test_cli_reports_errors_without_a_traceback(tree, tmp_path):
    out = tmp_path / "records"
    ok = run_cli(["-m", "alexnet_dist.convert", str(tree), str(out), "--num-shards", "2"])
    assert ok.returncode == 0, ok.stderr
    assert "15 images of 3 classes -> 2 'train' shards" in ok.stdout
    again = run_cli(["-m", "alexnet_dist.convert", str(tree), str(out), "--num-shards", "2"])
    assert again.returncode == 2
    assert "alexnet-convert: error:" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
