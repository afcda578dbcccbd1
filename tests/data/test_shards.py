"""One shard, verifiably: written under a temporary name, with a marker of its count and
SHA-256 that a resumed conversion trusts only while the file still matches it."""

import json
import os
from pathlib import Path

from alexnet_dist.data import schema
from alexnet_dist.data.image_limits import ImageLimits
from alexnet_dist.data.listing import Entry
from alexnet_dist.data.shards import count_records, sha256, shard_job
from tests.helpers import read_records, write_image

LIMITS = ImageLimits()


def _entries(root, n=3):
    entries = []
    for i in range(n):
        path = root / "images" / "n01" / f"{i}.JPEG"
        write_image(str(path), (40 * i, 0, 200))
        entries.append(Entry(str(path), f"n01/{i}.JPEG", 0, "n01"))
    return entries


def test_a_shard_is_written_with_its_report_and_kept_while_it_matches(tmp_path):
    entries = _entries(tmp_path)
    path = str(tmp_path / schema.shard_name("train", 0, 1))
    report, reused = shard_job(path, entries, skip_bad=False, resize=None, limits=LIMITS)
    assert not reused and report["count"] == 3 == count_records(path, 10**6)
    assert report["sha256"] == sha256(path) and report["classes"] == {"n01": 3}
    assert json.loads(Path(path + ".done.json").read_text()) == report
    assert not os.path.exists(path + ".tmp")
    assert [r["file"] for r in read_records(str(tmp_path), "train")] == [e.relpath for e in entries]
    # Run again: the verified shard is kept as it is.
    mtime = os.stat(path).st_mtime_ns
    assert shard_job(path, entries, skip_bad=False, resize=None, limits=LIMITS) == (report, True)
    assert os.stat(path).st_mtime_ns == mtime


def test_a_shard_that_no_longer_matches_its_marker_is_written_again(tmp_path):
    entries = _entries(tmp_path)
    path = str(tmp_path / schema.shard_name("train", 0, 1))
    report, _ = shard_job(path, entries, skip_bad=False, resize=None, limits=LIMITS)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    again, reused = shard_job(path, entries, skip_bad=False, resize=None, limits=LIMITS)
    assert not reused and again == report  # byte-identical to the first write


def test_unreadable_files_are_skipped_and_listed_when_asked(tmp_path):
    entries = _entries(tmp_path)
    with open(entries[1].path, "w") as f:
        f.write("not an image")
    path = str(tmp_path / schema.shard_name("train", 0, 1))
    report, _ = shard_job(path, entries, skip_bad=True, resize=None, limits=LIMITS)
    assert report["count"] == 2
    assert [s["file"] for s in report["skipped"]] == ["n01/1.JPEG"]
