"""The built-in dataset: ten classes of rendered shapes, as JPEG files and then TFRecords.

Each image is one filled shape (circle, ring, square, triangle, star, cross,
hexagon, crescent, arrow, bowtie) at a random position, size, rotation and colour,
on a random background with random lines and dots as clutter. Nothing is
downloaded: the images are rendered with Pillow, written as JPEGs in the
class-per-folder layout of ImageNet's train set, and converted by the same
converter that real data goes through. `prepare` does this once per spec and
reuses the result.
"""

import colorsys
import concurrent.futures
import dataclasses
import fcntl
import json
import logging
import math
import multiprocessing
import os
import random
import shutil

from PIL import Image, ImageDraw

from alexnet_dist.data import converter

log = logging.getLogger(__name__)

CLASSES = (
    "arrow",
    "bowtie",
    "circle",
    "crescent",
    "cross",
    "hexagon",
    "ring",
    "square",
    "star",
    "triangle",
)
SPLITS = ("train", "val")
_VERSION = 1  # bump when the rendering changes, so cached copies are not reused


@dataclasses.dataclass(frozen=True)
class ShapesSpec:
    """What to render: image side in pixels, images per class per split, seed."""

    image_size: int = 112
    train_per_class: int = 600
    val_per_class: int = 100
    seed: int = 0

    def dirname(self) -> str:
        return (
            f"shapes-v{_VERSION}-{self.image_size}px-"
            f"{self.train_per_class}x{self.val_per_class}-seed{self.seed}"
        )


def _polygon(cx, cy, r, angle, points):
    return [
        (
            cx + r * px * math.cos(angle) - r * py * math.sin(angle),
            cy + r * px * math.sin(angle) + r * py * math.cos(angle),
        )
        for px, py in points
    ]


def _regular(n, inner=None):
    if inner is None:
        return [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]
    out = []
    for k in range(2 * n):
        rad = 1.0 if k % 2 == 0 else inner
        a = math.pi * k / n - math.pi / 2
        out.append((rad * math.cos(a), rad * math.sin(a)))
    return out


_OUTLINES = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": _regular(3),
    "hexagon": _regular(6),
    "star": _regular(5, inner=0.4),
    "cross": [
        (-0.3, -1),
        (0.3, -1),
        (0.3, -0.3),
        (1, -0.3),
        (1, 0.3),
        (0.3, 0.3),
        (0.3, 1),
        (-0.3, 1),
        (-0.3, 0.3),
        (-1, 0.3),
        (-1, -0.3),
        (-0.3, -0.3),
    ],
    "arrow": [
        (-1, -0.25),
        (0.2, -0.25),
        (0.2, -0.65),
        (1, 0),
        (0.2, 0.65),
        (0.2, 0.25),
        (-1, 0.25),
    ],
    "bowtie": [(-1, -0.8), (0, 0), (-1, 0.8), (1, 0.8), (0, 0), (1, -0.8)],
}


def _colour(rng, lightness):
    r, g, b = colorsys.hls_to_rgb(rng.random(), lightness, 0.4 + 0.6 * rng.random())
    return int(r * 255), int(g * 255), int(b * 255)


def render(class_name: str, size: int, rng: random.Random) -> Image.Image:
    """Renders one image of `class_name` with the randomness drawn from `rng`."""
    dark_shape = rng.random() < 0.5
    background = _colour(rng, 0.75 + 0.2 * rng.random() if dark_shape else 0.1 + 0.2 * rng.random())
    foreground = _colour(rng, 0.2 + 0.2 * rng.random() if dark_shape else 0.6 + 0.25 * rng.random())
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 8)):  # clutter behind the shape
        xy = [rng.uniform(0, size) for _ in range(4)]
        draw.line(xy, fill=_colour(rng, rng.random()), width=rng.randint(1, 2))
    for _ in range(rng.randint(5, 15)):
        x, y, d = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1, 3)
        draw.ellipse([x - d, y - d, x + d, y + d], fill=_colour(rng, rng.random()))

    r = size * rng.uniform(0.16, 0.34)
    cx, cy = (rng.uniform(r, size - r) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    box = [cx - r, cy - r, cx + r, cy + r]
    if class_name == "circle":
        draw.ellipse(box, fill=foreground)
    elif class_name == "ring":
        draw.ellipse(box, outline=foreground, width=max(2, int(r / 3)))
    elif class_name == "crescent":
        draw.ellipse(box, fill=foreground)
        dx, dy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        draw.ellipse([box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy], fill=background)
    else:
        draw.polygon(_polygon(cx, cy, r, angle, _OUTLINES[class_name]), fill=foreground)
    return image


def _render_split(root: str, split: str, spec: ShapesSpec, class_index: int) -> int:
    """Renders one class of one split; runs in a worker process."""
    name = CLASSES[class_index]
    count = spec.train_per_class if split == "train" else spec.val_per_class
    out_dir = os.path.join(root, split, name)
    os.makedirs(out_dir, exist_ok=True)
    for i in range(count):
        # One generator per image: the output does not depend on worker scheduling.
        rng = random.Random(f"{spec.seed}/{split}/{name}/{i}")
        render(name, spec.image_size, rng).save(
            os.path.join(out_dir, f"{name}_{i:05d}.jpg"), quality=90
        )
    return count


def prepare(cache_dir: str, spec: ShapesSpec = ShapesSpec(), workers: int | None = None) -> str:
    """Makes the built-in dataset's TFRecords if they are not there yet.

    Args:
        cache_dir: folder that holds generated datasets, one subfolder per spec.
        spec: what to render.
        workers: processes for rendering and conversion (default: the CPU count).

    Returns:
        The directory of converted records (shards, labels.txt, train.json, val.json).
    """
    root = os.path.join(os.path.expanduser(cache_dir), spec.dirname())
    records = os.path.join(root, "records")
    done = os.path.join(root, "COMPLETE")
    os.makedirs(os.path.dirname(root), exist_ok=True)
    # Several workers of one job may call this at once: one renders, the rest wait.
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            _generate(root, records, spec, workers or os.cpu_count() or 1)
            with open(done, "w") as f:
                json.dump(dataclasses.asdict(spec), f)
    return records


def _generate(root: str, records: str, spec: ShapesSpec, workers: int) -> None:
    log.info("rendering the built-in shapes dataset into %s (once)", root)
    shutil.rmtree(root, ignore_errors=True)  # an interrupted earlier attempt
    jpegs = os.path.join(root, "jpeg")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = [
            pool.submit(_render_split, jpegs, split, spec, c)
            for split in SPLITS
            for c in range(len(CLASSES))
        ]
        for job in jobs:
            job.result()
    for split, per_class in (("train", spec.train_per_class), ("val", spec.val_per_class)):
        # At least 4 shards, so that up to 4 workers each read their own.
        images = per_class * len(CLASSES)
        shards = min(images, max(4, min(16, images // 256)))
        converter.convert_tree(
            os.path.join(jpegs, split), records, split, shards, workers=workers, seed=spec.seed
        )
