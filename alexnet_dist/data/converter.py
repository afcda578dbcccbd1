"""alexnet-convert's work: image folders -> sharded TFRecords, a label map and a split report.

The files are listed (listing.py), shuffled with a fixed seed so every shard
mixes classes, dealt round-robin to shards, and each shard is written by a
worker process (shards.py), which decodes every file and keeps or re-encodes
its JPEG bytes (encoding.py). The output is deterministic: the same input and
arguments give byte-identical shards.

Shards are written into a scratch folder (`.<split>.partial/`) and moved into
place only when every shard succeeded, so a failed or interrupted conversion
never leaves a half-written split, and existing output is replaced only on
request. The scratch folder makes conversion resumable: a re-run with the same
plan keeps every shard whose file still matches its marker and redoes the rest.
"""

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import random
import shutil

from tqdm import tqdm

from alexnet_dist.data import schema
from alexnet_dist.data.image_limits import ImageLimits, available_memory
from alexnet_dist.data.listing import Entry, existing_split_files, list_flat, list_tree
from alexnet_dist.data.schema import ConversionError
from alexnet_dist.data.shards import shard_job, write_text

log = logging.getLogger(__name__)

# A shard writer's memory besides the image it decodes: Python and Pillow (it writes
# without TensorFlow); 35 MB measured with ru_maxrss, with room to spare.
WORKER_BASE_BYTES = 128 * 1024 * 1024


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
    limits: ImageLimits | None = None,
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
        limits: files above these (bytes, pixels from the header) are bad images,
            refused before they are decoded; the defaults are data.max_image_*.

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
        items = list_tree(input_dir)
    else:
        items = list_flat(input_dir, file_classes, labels_source)
    classes = sorted({c for _, c in items})
    existing = existing_split_files(output_dir, split)
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

    entries = [Entry(os.path.join(input_dir, rel), rel, index[c], c) for rel, c in items]
    if num_shards > len(entries):
        raise ConversionError(
            f"num_shards={num_shards} is more than the {len(entries)} images in {input_dir}"
        )
    random.Random(seed).shuffle(entries)
    shards = [entries[i::num_shards] for i in range(num_shards)]
    names = [schema.shard_name(split, i, num_shards) for i in range(num_shards)]

    os.makedirs(output_dir, exist_ok=True)
    scratch = os.path.join(output_dir, f".{split}.partial")
    limits = limits or ImageLimits()
    _prepare_scratch(scratch, _plan(input_dir, split, shards, skip_bad, resize, limits))
    reports = _write_all(scratch, names, shards, workers, skip_bad, resize, limits, progress)
    report = _merge(split, input_dir, names, reports, resize)
    if report["num_examples"] == 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ConversionError(f"every image in {input_dir} was skipped as unreadable")
    # The new shards first, then what is left of the old split (--overwrite): an
    # interruption between the two leaves a whole split, never none.
    for name in names:
        os.replace(os.path.join(scratch, name), os.path.join(output_dir, name))
    for name in existing:
        if name not in names and name != f"{split}.json":
            os.remove(os.path.join(output_dir, name))
    shutil.rmtree(scratch, ignore_errors=True)
    if not os.path.exists(labels_path):
        write_text(labels_path, "".join(f"{name}\n" for name in labels))
    write_text(os.path.join(output_dir, f"{split}.json"), json.dumps(report, indent=2) + "\n")
    return report


def _plan(input_dir, split, shards, skip_bad, resize, limits) -> dict:
    """What the shards will hold: a partial conversion is resumed only for the same plan,
    so a source file changed since (its size or modification time) has its shard redone."""
    digest = hashlib.sha256()
    for i, shard in enumerate(shards):
        for e in shard:
            stat = os.stat(e.path)
            digest.update(f"{i}\t{e.relpath}\t{e.label}\t{e.class_name}\t{stat.st_size}\t"
                          f"{stat.st_mtime_ns}\n".encode())  # fmt: skip
    return {
        "input_dir": os.path.abspath(input_dir),
        "split": split, "num_shards": len(shards), "skip_bad": skip_bad, "resize": resize,
        "max_pixels": limits.max_pixels, "max_bytes": limits.max_bytes,
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
    write_text(plan_path, json.dumps(plan, indent=1))


def _write_all(scratch, names, shards, workers, skip_bad, resize, limits, progress):
    workers = min(workers or default_workers(limits), len(shards))
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
                done(i, shard_job(path, shard, skip_bad, resize, limits))
        else:
            # spawn, not fork: the parent may already run TensorFlow's threads.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {
                    pool.submit(shard_job, path, shard, skip_bad, resize, limits): i
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


def default_workers(limits: ImageLimits) -> int:
    """One worker per core, and no more than the available memory holds: each may decode
    an image at the pixel limit."""
    cores = os.cpu_count() or 1
    memory = available_memory()
    if memory is None:
        return cores
    per_worker = limits.decode_bytes() + WORKER_BASE_BYTES
    return max(1, min(cores, memory // per_worker))


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
