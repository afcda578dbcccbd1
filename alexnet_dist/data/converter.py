"""Class-per-folder image tree -> sharded TFRecords, a label map and a split report.

The input is the ImageNet train layout: `root/<class name>/<image files>`. The
output is deterministic (same input and arguments, byte-identical shards):
files are listed in sorted order, shuffled with a fixed seed so every shard mixes
classes, dealt round-robin to shards, and JPEG bytes are copied unchanged.
Images that are not RGB JPEGs (PNG, greyscale, CMYK) are re-encoded as RGB JPEGs
and listed as repaired. Shards are written into a scratch folder and moved into
place only when every shard succeeded, so a failed or interrupted conversion
never leaves a half-written split, and existing output is replaced only on request.
"""

import concurrent.futures
import dataclasses
import fnmatch
import io
import json
import logging
import multiprocessing
import os
import random
import shutil

from PIL import Image

from alexnet_dist.data import schema

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


class ConversionError(Exception):
    """Raised for input the converter cannot turn into a dataset; names the culprit."""


class BadImageError(ConversionError):
    def __init__(self, path: str, reason: str):
        super().__init__(
            f"cannot read image {path}: {reason}; "
            "fix or remove it, or pass --skip-bad to skip such files"
        )
        self.path = path
        self.reason = reason

    def __reduce__(self):  # raised in worker processes, so it must survive pickling
        return type(self), (self.path, self.reason)


@dataclasses.dataclass(frozen=True)
class _Entry:
    path: str  # absolute
    relpath: str  # relative to the input root, recorded in the shard
    label: int
    class_name: str


def load_rgb_jpeg(path: str) -> tuple[bytes, int, int, str | None]:
    """Reads an image file as RGB JPEG bytes.

    Returns:
        (jpeg bytes, height, width, repair) where repair is None when the file's
        own bytes were kept, else what was converted (e.g. "PNG RGBA -> RGB JPEG").

    Raises:
        BadImageError: the file is not a decodable image.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated file fails here, not in training
            if image.format == "JPEG" and image.mode == "RGB":
                return data, image.height, image.width, None
            repair = f"{image.format} {image.mode} -> RGB JPEG"
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
            return out.getvalue(), image.height, image.width, repair
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(path, str(e) or type(e).__name__) from None


def _write_shard(path: str, entries: list[_Entry], skip_bad: bool) -> dict:
    """Writes one shard; runs in a worker process."""
    import tensorflow as tf

    report = {"count": 0, "classes": {}, "skipped": [], "repaired": []}
    with tf.io.TFRecordWriter(path) as writer:
        for entry in entries:
            try:
                encoded, height, width, repair = load_rgb_jpeg(entry.path)
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
    return report


def _list_tree(input_dir: str) -> tuple[list[str], dict[str, list[str]]]:
    if not os.path.isdir(input_dir):
        raise ConversionError(f"input directory {input_dir} does not exist or is not a directory")
    classes = sorted(
        d
        for d in os.listdir(input_dir)
        if not d.startswith(".") and os.path.isdir(os.path.join(input_dir, d))
    )
    if not classes:
        raise ConversionError(
            f"input directory {input_dir} has no class folders; "
            f"expected {input_dir}/<class>/<image>"
        )
    files = {}
    for name in classes:
        class_dir = os.path.join(input_dir, name)
        files[name] = sorted(
            f
            for f in os.listdir(class_dir)
            if not f.startswith(".") and os.path.isfile(os.path.join(class_dir, f))
        )
    if not any(files.values()):
        raise ConversionError(f"input directory {input_dir} has class folders but no image files")
    return classes, files


def _existing_split_files(output_dir: str, split: str) -> list[str]:
    if not os.path.isdir(output_dir):
        return []
    names = [f"{split}.json"] + fnmatch.filter(os.listdir(output_dir), schema.shard_pattern(split))
    return sorted(n for n in names if os.path.exists(os.path.join(output_dir, n)))


def convert_tree(
    input_dir: str,
    output_dir: str,
    split: str,
    num_shards: int,
    workers: int | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    seed: int = 0,
) -> dict:
    """Converts `input_dir/<class>/<file>` into `num_shards` TFRecord shards of `split`.

    The label map is `output_dir/labels.txt`: if it exists (another split was
    converted first), its labels are used and every class folder must be in it;
    otherwise the sorted class folder names become the labels.

    Args:
        input_dir: the class-per-folder image tree.
        output_dir: where shards, labels.txt and `{split}.json` go (created if missing).
        split: split name used in the shard names, e.g. "train" or "val".
        num_shards: number of shards; at most the number of images.
        workers: processes writing shards (default: the CPU count); 1 writes inline.
        overwrite: replace this split's existing shards instead of refusing.
        skip_bad: skip undecodable files (listed in the report) instead of failing.
        seed: seed of the file shuffle that mixes classes across shards.

    Returns:
        The split report that is also written to `output_dir/{split}.json`.
    """
    if num_shards < 1:
        raise ConversionError(f"num_shards must be >= 1, got {num_shards}")
    if not split or os.sep in split or split.startswith("."):
        raise ConversionError(f"split must be a plain name such as 'train', got {split!r}")
    classes, files = _list_tree(input_dir)
    existing = _existing_split_files(output_dir, split)
    if existing and not overwrite:
        raise ConversionError(
            f"output directory {output_dir} already holds the {split!r} split "
            f"({', '.join(existing[:3])}{', ...' if len(existing) > 3 else ''}); "
            "pass --overwrite to replace it"
        )

    labels_path = os.path.join(output_dir, schema.LABELS_FILE)
    if os.path.exists(labels_path):
        labels = schema.read_labels(output_dir)
        unknown = [c for c in classes if c not in labels]
        if unknown:
            raise ConversionError(
                f"class folder(s) {unknown[:5]} in {input_dir} are not in the label map "
                f"{labels_path}; every split must use the same classes"
            )
    else:
        labels = classes
    index = {name: i for i, name in enumerate(labels)}

    entries = [
        _Entry(os.path.join(input_dir, c, f), f"{c}/{f}", index[c], c)
        for c in classes
        for f in files[c]
    ]
    if num_shards > len(entries):
        raise ConversionError(
            f"num_shards={num_shards} is more than the {len(entries)} images in {input_dir}"
        )
    random.Random(seed).shuffle(entries)
    shards = [entries[i::num_shards] for i in range(num_shards)]
    names = [schema.shard_name(split, i, num_shards) for i in range(num_shards)]

    os.makedirs(output_dir, exist_ok=True)
    scratch = os.path.join(output_dir, f".{split}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        reports = _write_all(scratch, names, shards, workers, skip_bad)
        report = _merge(split, input_dir, names, reports)
        if report["num_examples"] == 0:
            raise ConversionError(f"every image in {input_dir} was skipped as unreadable")
        for name in existing:
            os.remove(os.path.join(output_dir, name))
        for name in names:
            os.replace(os.path.join(scratch, name), os.path.join(output_dir, name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not os.path.exists(labels_path):
        _write_text(labels_path, "".join(f"{name}\n" for name in labels))
    _write_text(os.path.join(output_dir, f"{split}.json"), json.dumps(report, indent=2) + "\n")
    return report


def _write_all(scratch, names, shards, workers, skip_bad):
    workers = min(workers or os.cpu_count() or 1, len(shards))
    paths = [os.path.join(scratch, n) for n in names]
    if workers == 1:
        reports = []
        for i, (path, shard) in enumerate(zip(paths, shards, strict=True)):
            reports.append(_write_shard(path, shard, skip_bad))
            log.info("wrote shard %d/%d (%d records)", i + 1, len(shards), reports[-1]["count"])
        return reports
    # spawn, not fork: the parent may already run TensorFlow's threads.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = zip(paths, shards, strict=True)
        futures = [pool.submit(_write_shard, path, shard, skip_bad) for path, shard in jobs]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            if future.exception() is not None:
                for f in futures:
                    f.cancel()
                raise future.exception()
            log.info("wrote shard %d/%d", done, len(shards))
        return [f.result() for f in futures]


def _merge(split, input_dir, names, reports) -> dict:
    classes: dict[str, int] = {}
    for r in reports:
        for name, count in r["classes"].items():
            classes[name] = classes.get(name, 0) + count
    return {
        "split": split,
        "source": os.path.abspath(input_dir),
        "num_examples": sum(r["count"] for r in reports),
        "num_shards": len(names),
        "shards": {name: r["count"] for name, r in zip(names, reports, strict=True)},
        "classes": dict(sorted(classes.items())),
        "skipped": [s for r in reports for s in r["skipped"]],
        "repaired": [s for r in reports for s in r["repaired"]],
    }


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
