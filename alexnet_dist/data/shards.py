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
from alexnet_dist.data.image_limits import ImageLimits
from alexnet_dist.data.listing import Entry
from alexnet_dist.data.tfrecord_io import RecordWriter, iter_records

log = logging.getLogger(__name__)


def write_shard(
    path: str, entries: list[Entry], skip_bad: bool, resize: int | None, limits: ImageLimits
) -> dict:
    """Writes one shard as path.tmp, renames it to path; runs in a worker process.

    Returns the shard's report, with its record count and the file's SHA-256.
    """
    report = {"count": 0, "classes": {}, "skipped": [], "repaired": []}
    with RecordWriter(path + ".tmp") as writer:
        for entry in entries:
            try:
                encoded, height, width, repair = load_rgb_jpeg(entry.path, resize, limits)
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


def count_records(path: str, max_length: int) -> int:
    """Records in a TFRecord file; reads and checks every record, so a damaged file, or
    one with a record longer than `max_length`, fails here."""
    return sum(1 for _ in iter_records(path, max_length))


def shard_job(path, entries, skip_bad, resize, limits) -> tuple[dict, bool]:
    """Keeps a finished shard that still matches its marker, else writes it; in a worker.

    Returns (report, reused).
    """
    marker = path + ".done.json"
    try:
        with open(marker) as f:
            report = json.load(f)
        count = count_records(path, record_limit(limits))
        if sha256(path) == report["sha256"] and count == report["count"]:
            return report, True
        log.warning("%s does not match its marker; writing it again", path)
    except (OSError, ValueError, KeyError):
        pass  # no marker or no shard yet: write it
    except Exception as e:  # noqa: BLE001 - a damaged TFRecord fails to read in many ways
        log.warning("%s is unreadable (%s); writing it again", path, type(e).__name__)
    report = write_shard(path, entries, skip_bad, resize, limits)
    write_text(marker, json.dumps(report))
    return report, False


def record_limit(limits: ImageLimits) -> int:
    """The longest record a shard written with `limits` can hold: an image at the byte
    limit (or re-encoded at the pixel limit, at most 3 bytes a pixel), and its fields."""
    return max(limits.max_bytes, 3 * limits.max_pixels) + 64 * 1024


def write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
