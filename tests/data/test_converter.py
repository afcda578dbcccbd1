import filecmp
import glob
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from alexnet_dist.data import schema
from alexnet_dist.data.converter import convert_tree
from alexnet_dist.data.encoding import BadImageError
from alexnet_dist.data.image_limits import ImageLimits
from alexnet_dist.data.listing import Entry
from alexnet_dist.data.schema import ConversionError
from tests.helpers import REPO, WNIDS, read_records, run_cli, write_image, write_png_bomb


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
    write_image(str(val / "n03" / "v.JPEG"), (1, 2, 3))
    convert_tree(str(val), str(out), "val", 1, workers=1)
    (record,) = read_records(out, "val")
    assert record["label"] == 2 and record["text"] == "n03"

    stranger = tmp_path / "stranger"
    write_image(str(stranger / "n99" / "x.JPEG"), (1, 2, 3))
    with pytest.raises(ConversionError, match=r"\['n99'\].*not in the label map"):
        convert_tree(str(stranger), str(out), "test", 1, workers=1)


def test_non_jpeg_and_non_rgb_files_are_repaired(tree, tmp_path):
    write_image(str(tree / "n01" / "png_named.JPEG"), (10, 20, 30), fmt="PNG")
    write_image(str(tree / "n02" / "grey.JPEG"), (90, 0, 0), mode="L")
    write_image(str(tree / "n03" / "cmyk.JPEG"), (0, 0, 0), mode="CMYK")
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


@pytest.mark.slow
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

    # --overwrite removes only the split's own files, and only once the new ones are in.
    (out / "notes.txt").write_text("mine")
    (out / "val-00000-of-00001.tfrecord").write_text("another split")
    convert_tree(str(tree), str(out), "train", 2, workers=1, overwrite=True)
    shards = sorted(n for n in os.listdir(out) if n.startswith("train-"))
    assert shards == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert len(read_records(out, "train")) == 15
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "val-00000-of-00001.tfrecord").read_text() == "another split"


@pytest.mark.security
def test_a_source_file_changed_since_an_interruption_has_its_shards_redone(tree, tmp_path):
    # The plan a partial conversion resumes by holds every source file's size and time,
    # and the input folder: a shard written from an older file is not kept.
    from alexnet_dist.data import converter

    def plan():
        shards = [[Entry(str(tree / rel), rel, 0, "n01")] for rel in ["n01/img_0.JPEG"]]
        return converter._plan(str(tree), "train", shards, False, None, ImageLimits())

    before = plan()
    assert before == plan() and before["input_dir"] == str(tree)
    source = tree / "n01" / "img_0.JPEG"
    os.utime(source, ns=(0, source.stat().st_mtime_ns + 1))
    assert plan() != before


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


@pytest.mark.slow
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
    done = run_cli(["-m", "alexnet_dist.cli.convert", str(train), str(straight), *args])
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "alexnet_dist.cli.convert", str(train), str(resumed), *args],
        cwd=REPO,
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

    again = run_cli(["-m", "alexnet_dist.cli.convert", str(train), str(resumed), *args])
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


@pytest.mark.security
@pytest.mark.slow
def test_a_decompression_bomb_is_refused_by_name_in_little_memory(tmp_path):
    # 140 KB that declare 12000 x 12000 pixels, among two good photos. Before the limit
    # this converted with a warning and took 1.3 GB in a worker.
    tree = tmp_path / "in"
    write_image(str(tree / "cat" / "ok.jpg"), (200, 10, 10))
    write_image(str(tree / "dog" / "ok.jpg"), (10, 200, 10))
    write_png_bomb(tree / "cat" / "bomb.png")
    # The peak of the command and its workers, measured in a process of its own.
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(done.stdout + done.stderr)\n"
    )
    convert = [sys.executable, "-m", "alexnet_dist.cli.convert", str(tree)]
    done = run_cli(["-c", measure, *convert, str(tmp_path / "out"), "--no-progress"])
    code, peak_kib = map(int, done.stdout.split("\n", 1)[0].split())
    output = done.stdout.split("\n", 1)[1]
    assert code == 2
    bomb = tree / "cat" / "bomb.png"
    assert f"{bomb}: 12000x12000 = 144,000,000 pixels, above the limit" in output
    assert peak_kib * 1024 < 600 * 1024**2, peak_kib
    assert not (tmp_path / "out" / "train.json").exists()
    # --skip-bad converts the others and lists it; a larger limit takes it.
    skipped = run_cli(["-m", "alexnet_dist.cli.convert", str(tree), str(tmp_path / "out"),
                       "--skip-bad", "--no-progress"])  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    report = json.loads((tmp_path / "out" / "train.json").read_text())
    assert report["num_examples"] == 2
    assert [s["file"] for s in report["skipped"]] == ["cat/bomb.png"]
