"""Writing one shard, verifiably: a TFRecord file of a split, its record count and SHA-256.

A shard is written under a temporary name and renamed when complete. A finished
shard gets a marker (`<shard>.done.json`) with its report; a later run with the
same plan keeps every shard whose file still matches its marker (converter.py).
"""

import hashlib
import json
import logging
import os

from alexnet_dist.data import schema
from alexnet_dist.data.encoding import BadImageError, load_rgb_jpeg
from alexnet_dist.data.listing import Entry

log = logging.getLogger(__name__)


def write_shard(path: str, entries: list[Entry], skip_bad: bool, resize: int | None) -> dict:
    """Writes one shard as path.tmp, renames it to path; runs in a worker process.

    Returns the shard's report, with its record count and the file's SHA-256.
    """
    import tensorflow as tf

    report = {"count": 0, "classes": {}, "skipped": [], "repaired": []}
    with tf.io.TFRecordWriter(path + ".tmp") as writer:
        for entry in entries:
            try:
                encoded, height, width, repair = load_rgb_jpeg(entry.path, resize)
            except BadImageError as e:
                if not skip_bad:
                    raise
                report["skipped"].append({"file": entry.relpath, "reason": e.reason})
                continue
            if repair:
                report["repaired"].append({"file": entry.relpath, "repair": repair})
            record = schema.Record(
                encoded, entry.label, entry.class_name, height, width, entry.relpath
            )
            writer.write(schema.serialize(record))
            report["count"] += 1
            report["classes"][entry.class_name] = report["classes"].get(entry.class_name, 0) + 1
    report["sha256"] = sha256(path + ".tmp")
    os.replace(path + ".tmp", path)
    return report


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_records(path: str) -> int:
    """Records in a TFRecord file; reads every record, so a damaged file fails here."""
    import tensorflow as tf

    return sum(1 for _ in tf.data.TFRecordDataset(path))


def shard_job(path, entries, skip_bad, resize) -> tuple[dict, bool]:
    """Keeps a finished shard that still matches its marker, else writes it; in a worker.

    Returns (report, reused).
    """
    marker = path + ".done.json"
    try:
        with open(marker) as f:
            report = json.load(f)
        if sha256(path) == report["sha256"] and count_records(path) == report["count"]:
            return report, True
        log.warning("%s does not match its marker; writing it again", path)
    except (OSError, ValueError, KeyError):
        pass  # no marker or no shard yet: write it
    except Exception as e:  # noqa: BLE001 - a damaged TFRecord fails to read in many ways
        log.warning("%s is unreadable (%s); writing it again", path, type(e).__name__)
    report = write_shard(path, entries, skip_bad, resize)
    write_text(marker, json.dumps(report))
    return report, False


def write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
