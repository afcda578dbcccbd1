"""Limits on image files from other people: their size in bytes, and their pixels as the
header declares them, checked before anything is decoded.

A PNG of 140 KB can declare 12000 x 12000 pixels: 432 MB once decoded as RGB, and more
while it is converted and resized. Pillow only warns below twice its own threshold, and
TensorFlow decodes PNGs of up to 2^29 pixels (1.6 GB). So alexnet-convert and
alexnet-predict read a file's size and header first, and refuse it with its name. The
exported model's serving function does the same in its graph (serving/export.py).
"""

import dataclasses
import io
import os

from PIL import Image

from alexnet_dist.config import DataConfig
from alexnet_dist.data.schema import ConversionError

# The limit is checked here, from the header, with the user's own value; Pillow's check
# (a warning above 89.5 megapixels, an error above twice that) would refuse a larger
# limit and hide the declared size.
Image.MAX_IMAGE_PIXELS = None


class ImageTooLargeError(ConversionError):
    """An image file above a limit; the message names the file and the limit."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # raised in worker processes, so it must survive pickling
        return type(self), (self.path, self.reason)


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = DataConfig.max_image_pixels
    max_bytes: int = DataConfig.max_image_bytes

    def __post_init__(self):
        if self.max_pixels < 1 or self.max_bytes < 1:
            raise ConversionError(
                f"image limits must be positive, got {self.max_pixels} pixels and "
                f"{self.max_bytes} bytes"
            )

    def read(self, path: str) -> bytes:
        """The file's bytes; refuses a file above max_bytes before reading it."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > self.max_bytes:
                raise ImageTooLargeError(path, self._bytes_reason(size))
            data = f.read(self.max_bytes + 1)  # a file that grew while read stops here
        if len(data) > self.max_bytes:
            raise ImageTooLargeError(path, self._bytes_reason(len(data)))
        return data

    def check_pixels(self, path: str, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise ImageTooLargeError(
                path,
                f"{width}x{height} = {width * height:,} pixels, above the limit of "
                f"{self.max_pixels:,} (data.max_image_pixels, --max-pixels)",
            )

    def check_header(self, path: str, data: bytes) -> None:
        """Checks the pixels that `data`'s header declares; reads the header only."""
        try:
            with Image.open(io.BytesIO(data)) as image:  # Pillow parses the header, no more
                width, height = image.size
        except (OSError, SyntaxError, ValueError):
            return  # not an image Pillow knows: the decoder that follows says what is wrong
        self.check_pixels(path, width, height)

    def decode_bytes(self) -> int:
        """What decoding one image at the limit takes at most: RGB, plus a copy while it
        is converted and one while it is resized (the converter's worst case)."""
        return 3 * 3 * self.max_pixels

    def _bytes_reason(self, size: int) -> str:
        return (
            f"{size:,} bytes, above the limit of {self.max_bytes:,} "
            "(data.max_image_bytes, --max-bytes)"
        )


def available_memory() -> int | None:
    """Bytes of memory available to new processes (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
