"""ImageNet-style conversion: validation layouts, resize, resume, damaged shards."""

import csv
import filecmp
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
from PIL import Image

from alexnet_dist.data import schema, val_labels
from alexnet_dist.data.converter import ConversionError, convert_tree
from tests.data.test_converter import read_records
from tests.helpers import REPO, run_cli

WNIDS = ["n01440764", "n01443537", "n01484850"]  # sorted: the label order
# The devkit numbers classes in its own order, not the sorted WNID order.
DEVKIT_IDS = {"n01440764": 3, "n01443537": 1, "n01484850": 2}


@pytest.fixture
def imagenet(tmp_path):
    """A miniature ILSVRC-2012: train/<wnid>/*.JPEG, flat val/, devkit, Kaggle CSV."""
    rng = np.random.default_rng(0)
    root = tmp_path / "ILSVRC2012"
    for c, wnid in enumerate(WNIDS):
        for i in range(4):
            path = root / "train" / wnid / f"{wnid}_{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (30 + 4 * i, 40, 3), dtype=np.uint8)
            pixels[..., c] = 250  # a colour per class
            Image.fromarray(pixels).save(path, quality=95)
    truth = []
    (root / "val").mkdir()
    for n in range(1, 7):
        wnid = WNIDS[n % 3]
        pixels = np.full((36, 48, 3), 20, np.uint8)
        pixels[..., n % 3] = 250
        Image.fromarray(pixels).save(root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
        truth.append(wnid)
    devkit = root / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{DEVKIT_IDS[w]}\n" for w in truth)
    )
    synsets = np.zeros(4, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for i, wnid in enumerate(WNIDS):
        synsets[i] = (DEVKIT_IDS[wnid], wnid, 0)
    synsets[3] = (1001, "n00001740", 3)  # an inner node of the hierarchy: not a class
    scipy.io.savemat(devkit / "meta.mat", {"synsets": synsets})
    with open(root / "LOC_val_solution.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        for n, wnid in enumerate(truth, 1):
            writer.writerow([f"ILSVRC2012_val_{n:08d}", f"{wnid} 1 2 30 40 {wnid} 5 5 9 9"])
    return root, truth


@pytest.mark.parametrize("source", ["devkit", "kaggle", "pairs"])
def test_flat_validation_gets_the_train_label_of_its_synset(imagenet, tmp_path, source):
    root, truth = imagenet
    out = tmp_path / "records"
    convert_tree(str(root / "train"), str(out), "train", 3, workers=1)
    labels_path = {
        "devkit": root / "ILSVRC2012_devkit_t12",
        "kaggle": root / "LOC_val_solution.csv",
        "pairs": tmp_path / "val.txt",
    }[source]
    if source == "pairs":
        labels_path.write_text(
            "".join(f"ILSVRC2012_val_{n:08d}.JPEG {w}\n" for n, w in enumerate(truth, 1))
        )
    file_classes = val_labels.read(str(labels_path))
    report = convert_tree(
        str(root / "val"), str(out), "val", 2, workers=1,
        file_classes=file_classes, labels_source=str(labels_path),
    )  # fmt: skip
    assert report["num_examples"] == 6
    assert schema.read_labels(str(out)) == WNIDS  # from train, in sorted WNID order
    for r in read_records(out, "val"):
        n = int(r["file"].split("_")[-1].split(".")[0])
        assert r["text"] == truth[n - 1] and r["label"] == WNIDS.index(truth[n - 1])
        assert r["pixels"][..., r["label"]].mean() > 200  # the image is that class's colour


def test_flat_validation_with_missing_or_extra_labels_is_named(imagenet, tmp_path):
    root, truth = imagenet
    labels = val_labels.read(str(root / "LOC_val_solution.csv"))
    del labels["ILSVRC2012_val_00000004"]
    with pytest.raises(ConversionError, match="ILSVRC2012_val_00000004.JPEG"):
        convert_tree(str(root / "val"), str(tmp_path / "a"), "val", 1, file_classes=labels)
    labels = {**val_labels.read(str(root / "LOC_val_solution.csv")), "ILSVRC2012_val_00000099": "x"}
    with pytest.raises(ConversionError, match="not in .*first: ILSVRC2012_val_00000099"):
        convert_tree(str(root / "val"), str(tmp_path / "b"), "val", 1, file_classes=labels)
    with pytest.raises(ConversionError, match="is not an ILSVRC-2012 devkit"):
        val_labels.read(str(tmp_path))


def test_validation_in_synset_folders_converts_like_train(imagenet, tmp_path):
    root, truth = imagenet
    by_class = tmp_path / "val-by-class"
    for n, wnid in enumerate(truth, 1):
        (by_class / wnid).mkdir(parents=True, exist_ok=True)
        name = f"ILSVRC2012_val_{n:08d}.JPEG"
        os.link(root / "val" / name, by_class / wnid / name)
    out = tmp_path / "records"
    convert_tree(str(root / "train"), str(out), "train", 2, workers=1)
    convert_tree(str(by_class), str(out), "val", 2, workers=1)
    assert sorted((r["text"], r["label"]) for r in read_records(out, "val")) == sorted(
        (w, WNIDS.index(w)) for w in truth
    )


def test_resize_scales_the_shorter_side(imagenet, tmp_path):
    root, _ = imagenet
    out = tmp_path / "records"
    report = convert_tree(str(root / "train"), str(out), "train", 2, workers=1, resize=24)
    assert report["resize"] == 24
    for r in read_records(out, "train"):
        i = int(r["file"].split("_")[-1].split(".")[0])
        height, width = 30 + 4 * i, 40
        scale = 24 / min(height, width)
        want = (max(24, round(height * scale)), max(24, round(width * scale)))
        assert (r["height"], r["width"]) == r["pixels"].shape[:2] == want


def test_interrupted_conversion_resumes_to_the_same_output(tmp_path):
    # 12 large noisy JPEGs, one per shard, so that each shard takes a while to write.
    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    for i in range(12):
        (train / WNIDS[i % 3]).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(train / WNIDS[i % 3] / f"{i}.JPEG", quality=95)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ["--split", "train", "--num-shards", "12", "--workers", "1", "--resize", "24",
            "--no-progress"]  # fmt: skip
    done = run_cli(["-m", "alexnet_dist.convert", str(train), str(straight), *args])
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "alexnet_dist.convert", str(train), str(resumed), *args], cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    scratch = resumed / ".train.partial"
    deadline = time.time() + 120
    while len(glob.glob(f"{scratch}/*.done.json")) < 4 and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # no clean-up: as a crash or a cancelled job
    proc.wait(timeout=30)
    finished = sorted(glob.glob(f"{scratch}/*.done.json"))
    assert 4 <= len(finished) < 12, "the conversion was not stopped mid-way"
    assert not glob.glob(f"{resumed}/train-*")  # nothing in place before the end
    # Damage one finished shard: the re-run must notice and write it again.
    damaged = finished[0][: -len(".done.json")]
    with open(damaged, "r+b") as f:
        f.truncate(os.path.getsize(damaged) - 7)

    again = run_cli(["-m", "alexnet_dist.convert", str(train), str(resumed), *args])
    assert again.returncode == 0, again.stderr
    assert "resuming the partial conversion" in again.stderr
    kept = len(finished) - 1
    assert f"kept {kept} verified shards from an interrupted conversion" in again.stderr
    names = sorted(os.listdir(straight))
    assert names == sorted(os.listdir(resumed)) and len(names) == 12 + 2
    match, mismatch, errors = filecmp.cmpfiles(straight, resumed, names, shallow=False)
    assert mismatch == [] and errors == []
    assert not scratch.exists()


def test_other_options_discard_a_partial_conversion(imagenet, tmp_path):
    root, _ = imagenet
    out = tmp_path / "records"
    scratch = out / ".train.partial"
    scratch.mkdir(parents=True)
    (scratch / "plan.json").write_text('{"split": "train", "num_shards": 99}')
    (scratch / "train-00000-of-00099.tfrecord").write_text("stale")
    convert_tree(str(root / "train"), str(out), "train", 2, workers=1)
    assert sorted(n for n in os.listdir(out) if n.startswith("train")) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord", "train.json"
    ]  # fmt: skip
    assert not scratch.exists()


def test_cli_reports_counts_per_class_and_repairs(imagenet, tmp_path):
    root, _ = imagenet
    cmyk = root / "train" / WNIDS[0] / "cmyk.JPEG"
    Image.new("CMYK", (30, 30), (0, 255, 0, 0)).save(cmyk, format="JPEG")
    grey = root / "train" / WNIDS[1] / "grey.JPEG"
    Image.new("L", (30, 30), 128).save(grey, format="JPEG")
    png = root / "train" / WNIDS[2] / "png.JPEG"
    Image.new("RGB", (30, 30), (1, 2, 3)).save(png, format="PNG")
    result = run_cli(["-m", "alexnet_dist.convert", str(root / "train"), str(tmp_path / "r"),
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
