"""Photo-like benchmark records from the photographs that scikit-image ships.

    .venv/bin/python tools/make_photo_records.py /tmp/photos            # 2,000 images
    .venv/bin/python tools/make_photo_records.py /tmp/photos --images 5000
    .venv/bin/alexnet-bench-input /tmp/photos/records

Rendered test shapes are flat colour and compress to a few KB; the decoder does
much less work on them than on photographs. This script cuts random windows
(8-100 % of the area, aspect 3/4-4/3, as ImageNet photos are mostly 4:3) out of
the colour photographs bundled in `skimage.data` (astronaut, cat, coffee,
rocket, retina, ...), mirrors some, scales each to a 256-pixel shorter side and
writes it as a JPEG at quality 90, one class per source photograph. Then
`alexnet-convert` turns the folders into records (copying the JPEG bytes, since
they are already at 256). The JPEGs average about 24 KB, in the range of
ILSVRC-2012 at 256 pixels (about 110 KB at full size, 20-40 KB at 256).

Nothing is downloaded: the photographs are files inside the scikit-image wheel.
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

# The colour photographs in skimage.data's own folder (no download needed).
PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field",
    "immunohistochemistry", "stereo_motorcycle",
)  # fmt: skip


def photographs() -> dict[str, np.ndarray]:
    import skimage.data

    photos = {}
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disparity)
            photo = photo[0]
        photos[name] = photo[..., :3]
    return photos


def random_view(photo: np.ndarray, shorter: int, rng: np.random.Generator) -> Image.Image:
    """A random window of `photo`, possibly mirrored, scaled to a `shorter`-pixel shorter side."""
    height, width = photo.shape[:2]
    for _ in range(20):
        area = height * width * rng.uniform(0.08, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        h, w = int(round(np.sqrt(area / aspect))), int(round(np.sqrt(area * aspect)))
        if h <= height and w <= width:
            break
    else:
        h, w = height, width
    top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    image = Image.fromarray(photo[top : top + h, left : left + w])
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Landscape or portrait at 4:3 or 3:2, like most camera photographs.
    long_side = int(shorter * rng.choice([4 / 3, 3 / 2]))
    size = (long_side, shorter) if rng.random() < 0.75 else (shorter, long_side)
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def write_jpegs(out_dir: str, count: int, shorter: int, quality: int, seed: int) -> int:
    """Writes `count` JPEGs into out_dir/<photo>/; returns their total bytes."""
    rng = np.random.default_rng(seed)
    photos = photographs()
    names = sorted(photos)
    total = 0
    for name in names:
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    for i in range(count):
        name = names[i % len(names)]
        path = os.path.join(out_dir, name, f"{name}_{i:06d}.jpg")
        random_view(photos[name], shorter, rng).save(path, quality=quality)
        total += os.path.getsize(path)
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="gets jpeg/ (class folders) and records/ (the shards)")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--shorter-side", type=int, default=256)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from alexnet_dist.data.converter import convert_tree

    jpeg_dir = os.path.join(args.out_dir, "jpeg")
    records = os.path.join(args.out_dir, "records")
    if os.path.exists(jpeg_dir) or os.path.exists(records):
        print(f"{args.out_dir} already has jpeg/ or records/; choose a new folder", file=sys.stderr)
        return 1
    total = write_jpegs(jpeg_dir, args.images, args.shorter_side, args.quality, args.seed)
    convert_tree(jpeg_dir, records, "train", min(args.shards, args.images), seed=args.seed)
    print(
        f"{records}: {args.images:,} JPEGs from {len(PHOTOS)} photographs, shorter side "
        f"{args.shorter_side}, quality {args.quality}, {total / args.images / 1024:.1f} KB "
        f"on average, {args.shards} shards"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
