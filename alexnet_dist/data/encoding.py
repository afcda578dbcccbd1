"""One image file -> RGB JPEG bytes: kept as they are where they can be, else re-encoded.

Every file is decoded in full, so a truncated or corrupt file fails here, not in
training. Images that are not RGB JPEGs (PNG, greyscale, CMYK) are re-encoded as
RGB JPEGs and reported as repaired; `resize` scales the shorter side (the
paper's 256).
"""

import io

from PIL import Image

from alexnet_dist.data.image_limits import ImageLimits, ImageTooLargeError
from alexnet_dist.data.schema import ConversionError

JPEG_QUALITY = 95


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


def load_rgb_jpeg(
    path: str, resize: int | None = None, limits: ImageLimits | None = None
) -> tuple[bytes, int, int, str | None]:
    """Reads an image file as RGB JPEG bytes, optionally with its shorter side scaled to `resize`.

    A file above `limits` (bytes, or pixels as its header declares them) is refused
    before it is read whole or decoded.

    Returns:
        (jpeg bytes, height, width, repair) where repair is None when the file's
        own bytes were kept (or only resized), else what was converted (e.g.
        "PNG RGBA -> RGB JPEG"). height and width are those of the bytes returned.

    Raises:
        BadImageError: the file is not a decodable image, or is above a limit.
    """
    limits = limits or ImageLimits()
    try:
        data = limits.read(path)
        with Image.open(io.BytesIO(data)) as image:  # the header only, so far
            limits.check_pixels(path, image.width, image.height)
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
    except ImageTooLargeError as e:
        raise BadImageError(path, e.reason) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImageError(path, str(e) or type(e).__name__) from None


def _resized(width: int, height: int, shorter: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side `shorter` (as the reader rounds), or unchanged."""
    if not shorter or min(width, height) == shorter:
        return width, height
    scale = shorter / min(width, height)
    return max(shorter, round(width * scale)), max(shorter, round(height * scale))
