"""Image folders -> sharded TFRecords, a label map and a split report.

Inputs: the ImageNet train layout, `root/<class name>/<image files>` (validation
sorted into class folders looks the same), or a flat folder of images with a
labels file (see `val_labels.py`). The output is deterministic (same input and
arguments, byte-identical shards): files are listed in sorted order, shuffled
with a fixed seed so every shard mixes classes, dealt round-robin to shards, and
JPEG bytes are copied unchanged unless `resize` asks for the shorter side to be
scaled (the paper's 256). Images that are not RGB JPEGs (PNG, greyscale, CMYK)
are re-encoded as RGB JPEGs and listed as repaired; this is found by decoding
every file, not from a list.

Shards are written into a scratch folder (`.<split>.partial/`) and moved into
place only when every shard succeeded, so a failed or interrupted conversion
never leaves a half-written split, and existing output is replaced only on
request. The scratch folder makes conversion resumable: each finished shard
gets a marker with its record count and SHA-256, and a re-run with the same
plan keeps every shard whose file still matches its marker and redoes the rest.
"""

import concurrent.futures
import dataclasses
import fnmatch
import hashlib
import io
import json
import logging
import multiprocessing
import os
import random
import shutil

from PIL import Image
from tqdm import tqdm

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


def load_rgb_jpeg(path: str, resize: int | None = None) -> tuple[bytes, int, int, str | None]:
    """Reads an image file as RGB JPEG bytes, optionally with its shorter side scaled to `resize`.

    Returns:
        (jpeg bytes, height, width, repair) where repair is None when the file's
        own bytes were kept (or only resized), else what was converted (e.g.
        "PNG RGBA -> RGB JPEG"). height and width are those of the bytes returned.

    Raises:
        BadImageError: the file is not a decodable image.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated file fails here, not in training
            rgb_jpeg = image.format == "JPEG" and image.mode == "RGB"
            repair = None if rgb_jpeg else f"{image.format} {image.mode} -> RGB JPEG"
            size = _resized(image.width, image.height, resize)
            if rgb_jpeg and size == image.size:
                return data, image.height, image.width, None
            converted = image.convert("RGB")
            if size != image.size:
                converted = converted.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
            out = io.BytesIO()
            converted.save(out, format="JPEG", quality=JPEG_QUALITY)
            return out.getvalue(), size[1], size[0], repair
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(path, str(e) or type(e).__name__) from None


def _resized(width: int, height: int, shorter: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side `shorter` (as the reader rounds), or unchanged."""
    if not shorter or min(width, height) == shorter:
        return width, height
    scale = shorter / min(width, height)
    return max(shorter, round(width * scale)), max(shorter, round(height * scale))


def _write_shard(path: str, entries: list[_Entry], skip_bad: bool, resize: int | None) -> dict:
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


def _list_tree(input_dir: str) -> list[tuple[str, str]]:
    """[(path relative to input_dir, class name)] of a class-per-folder tree, sorted."""
    _check_dir(input_dir)
    classes = sorted(
        d
        for d in os.listdir(input_dir)
        if not d.startswith(".") and os.path.isdir(os.path.join(input_dir, d))
    )
    if not classes:
        raise ConversionError(
            f"input directory {input_dir} has no class folders; "
            f"expected {input_dir}/<class>/<image>, or a flat folder with --val-labels"
        )
    items = []
    for name in classes:
        class_dir = os.path.join(input_dir, name)
        items += [
            (f"{name}/{f}", name)
            for f in sorted(os.listdir(class_dir))
            if not f.startswith(".") and os.path.isfile(os.path.join(class_dir, f))
        ]
    if not items:
        raise ConversionError(f"input directory {input_dir} has class folders but no image files")
    return items


def _list_flat(input_dir: str, file_classes: dict[str, str], labels_source: str):
    """[(file name, class name)] of a flat folder whose classes come from a labels file.

    `file_classes` maps file names without extension to class names; every image
    must have a class, and every labelled image must be there.
    """
    _check_dir(input_dir)
    files = sorted(
        f
        for f in os.listdir(input_dir)
        if not f.startswith(".") and os.path.isfile(os.path.join(input_dir, f))
    )
    if not files:
        raise ConversionError(f"input directory {input_dir} has no image files")
    stems = {os.path.splitext(f)[0]: f for f in files}
    unlabelled = [f for stem, f in stems.items() if stem not in file_classes]
    if unlabelled:
        raise ConversionError(
            f"{len(unlabelled)} file(s) in {input_dir} have no label in {labels_source} "
            f"(first: {unlabelled[0]}); is this the split the labels describe?"
        )
    missing = sorted(stem for stem in file_classes if stem not in stems)
    if missing:
        raise ConversionError(
            f"{len(missing)} image(s) labelled in {labels_source} are not in {input_dir} "
            f"(first: {missing[0]}); is the folder complete?"
        )
    return [(f, file_classes[stem]) for stem, f in stems.items()]


def _check_dir(input_dir: str) -> None:
    if not os.path.isdir(input_dir):
        raise ConversionError(f"input directory {input_dir} does not exist or is not a directory")


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
    resize: int | None = None,
    file_classes: dict[str, str] | None = None,
    labels_source: str = "",
    progress: bool = False,
) -> dict:
    """Converts `input_dir` into `num_shards` TFRecord shards of `split`.

    `input_dir` is `<class>/<file>` folders, or, with `file_classes`, a flat folder
    of images whose classes that mapping gives (file name without extension ->
    class name, read from `labels_source` by `val_labels.read`).

    The label map is `output_dir/labels.txt`: if it exists (another split was
    converted first), its labels are used and every class must be in it;
    otherwise the sorted class names become the labels (for ImageNet: the sorted
    synset IDs, the same order whichever split comes first).

    Args:
        input_dir: the image folder.
        output_dir: where shards, labels.txt and `{split}.json` go (created if missing).
        split: split name used in the shard names, e.g. "train" or "val".
        num_shards: number of shards; at most the number of images.
        workers: processes writing shards (default: the CPU count); 1 writes inline.
        overwrite: replace this split's existing shards instead of refusing.
        skip_bad: skip undecodable files (listed in the report) instead of failing.
        seed: seed of the file shuffle that mixes classes across shards.
        resize: scale every image's shorter side to this many pixels (the paper's 256).
        file_classes: classes of a flat folder's files (see above).
        labels_source: where file_classes came from, for error messages.
        progress: show a progress bar on the terminal.

    Returns:
        The split report that is also written to `output_dir/{split}.json`.
    """
    if num_shards < 1:
        raise ConversionError(f"num_shards must be >= 1, got {num_shards}")
    if resize is not None and resize < 1:
        raise ConversionError(f"resize must be a positive number of pixels, got {resize}")
    if not split or os.sep in split or split.startswith("."):
        raise ConversionError(f"split must be a plain name such as 'train', got {split!r}")
    if file_classes is None:
        items = _list_tree(input_dir)
    else:
        items = _list_flat(input_dir, file_classes, labels_source)
    classes = sorted({c for _, c in items})
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
                f"class(es) {unknown[:5]} of {input_dir} are not in the label map "
                f"{labels_path}; every split must use the same classes"
            )
    else:
        labels = classes
    index = {name: i for i, name in enumerate(labels)}

    entries = [_Entry(os.path.join(input_dir, rel), rel, index[c], c) for rel, c in items]
    if num_shards > len(entries):
        raise ConversionError(
            f"num_shards={num_shards} is more than the {len(entries)} images in {input_dir}"
        )
    random.Random(seed).shuffle(entries)
    shards = [entries[i::num_shards] for i in range(num_shards)]
    names = [schema.shard_name(split, i, num_shards) for i in range(num_shards)]

    os.makedirs(output_dir, exist_ok=True)
    scratch = os.path.join(output_dir, f".{split}.partial")
    _prepare_scratch(scratch, _plan(split, shards, skip_bad, resize))
    reports = _write_all(scratch, names, shards, workers, skip_bad, resize, progress)
    report = _merge(split, input_dir, names, reports, resize)
    if report["num_examples"] == 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ConversionError(f"every image in {input_dir} was skipped as unreadable")
    for name in existing:
        os.remove(os.path.join(output_dir, name))
    for name in names:
        os.replace(os.path.join(scratch, name), os.path.join(output_dir, name))
    shutil.rmtree(scratch, ignore_errors=True)
    if not os.path.exists(labels_path):
        _write_text(labels_path, "".join(f"{name}\n" for name in labels))
    _write_text(os.path.join(output_dir, f"{split}.json"), json.dumps(report, indent=2) + "\n")
    return report


def _plan(split, shards, skip_bad, resize) -> dict:
    """What the shards will hold: a partial conversion is resumed only for the same plan."""
    digest = hashlib.sha256()
    for i, shard in enumerate(shards):
        for e in shard:
            digest.update(f"{i}\t{e.relpath}\t{e.label}\t{e.class_name}\n".encode())
    return {
        "split": split, "num_shards": len(shards), "skip_bad": skip_bad, "resize": resize,
        "schema": schema.VERSION, "entries_sha256": digest.hexdigest(),
    }  # fmt: skip


def _prepare_scratch(scratch: str, plan: dict) -> None:
    plan_path = os.path.join(scratch, "plan.json")
    if os.path.isdir(scratch):
        try:
            with open(plan_path) as f:
                same = json.load(f) == plan
        except (OSError, ValueError):
            same = False
        if same:
            log.info("resuming the partial conversion in %s", scratch)
            return
        log.info("discarding %s: an interrupted conversion with other input or options", scratch)
        shutil.rmtree(scratch)
    os.makedirs(scratch)
    _write_text(plan_path, json.dumps(plan, indent=1))


def _shard_job(path, entries, skip_bad, resize) -> tuple[dict, bool]:
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
    report = _write_shard(path, entries, skip_bad, resize)
    _write_text(marker, json.dumps(report))
    return report, False


def _write_all(scratch, names, shards, workers, skip_bad, resize, progress):
    workers = min(workers or os.cpu_count() or 1, len(shards))
    paths = [os.path.join(scratch, n) for n in names]
    bar = tqdm(total=len(shards), unit="shard", disable=not progress, dynamic_ncols=True)
    reports: list = [None] * len(shards)
    reused = images = 0

    def done(i, result):
        nonlocal reused, images
        reports[i], was_reused = result
        reused += was_reused
        images += reports[i]["count"]
        bar.update()
        bar.set_postfix(images=f"{images:,}", kept=reused)
        log.debug("shard %d/%d %s (%d records)", bar.n, len(shards),
                 "kept" if was_reused else "written", reports[i]["count"])  # fmt: skip

    try:
        if workers == 1:
            for i, (path, shard) in enumerate(zip(paths, shards, strict=True)):
                done(i, _shard_job(path, shard, skip_bad, resize))
        else:
            # spawn, not fork: the parent may already run TensorFlow's threads.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {
                    pool.submit(_shard_job, path, shard, skip_bad, resize): i
                    for i, (path, shard) in enumerate(zip(paths, shards, strict=True))
                }
                for future in concurrent.futures.as_completed(futures):
                    if future.exception() is not None:
                        for f in futures:
                            f.cancel()
                        raise future.exception()
                    done(futures[future], future.result())
    finally:
        bar.close()
    if reused:
        log.info("kept %d verified shards from an interrupted conversion", reused)
    return reports


def _merge(split, input_dir, names, reports, resize) -> dict:
    classes: dict[str, int] = {}
    for r in reports:
        for name, count in r["classes"].items():
            classes[name] = classes.get(name, 0) + count
    return {
        "split": split,
        "source": os.path.abspath(input_dir),
        "num_examples": sum(r["count"] for r in reports),
        "num_shards": len(names),
        "resize": resize,
        "shards": {name: r["count"] for name, r in zip(names, reports, strict=True)},
        "sha256": {name: r["sha256"] for name, r in zip(names, reports, strict=True)},
        "classes": dict(sorted(classes.items())),
        "skipped": [s for r in reports for s in r["skipped"]],
        "repaired": [s for r in reports for s in r["repaired"]],
    }


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
