"""Cover images: the one way every cover is read (`open_cover`) and checked (`check_cover`)."""
from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps

# Images whose longer side exceeds this are decoded at reduced size (JPEG `draft`) and shrunk to it.
MAX_SIDE = 4096
# The hard limit: PIL refuses images above twice its MAX_IMAGE_PIXELS (~179 Mpx) as decompression bombs.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
CHECK_LEVELS = ("none", "header", "full")
CHECK_SIDE = 64  # the full check decodes through open_cover at this size: every byte read, little work
WHITE = (255, 255, 255)


class CoverError(ValueError):
    """A cover that cannot be used. `reason` is the quarantine category, `detail` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _open(path: Path) -> Image.Image:
    """Open lazily (header only); bombs and non-images become CoverError."""
    if not path.is_file():
        raise CoverError("missing cover file", str(path))
    try:
        with warnings.catch_warnings():  # large but below MAX_PIXELS is good data: no warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as err:  # the message carries the pixel count
        raise CoverError("image too large", f"{path.name}: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise CoverError("unreadable image", f"{path.name}: {err}") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """CMYK, grayscale, palette, 16-bit -> RGB; any transparency composited on white."""
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grayscale: scale to 8 bits
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return im.convert("RGB")


def open_cover(path: str | Path, max_side: int | None = None) -> Image.Image:
    """Read a cover as an RGB image, fully decoded.

    The longer side is at most `max_side` px (default MAX_SIDE), aspect ratio kept; large JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale first (`Image.draft`), so a huge cover costs little memory.
    EXIF orientation is applied. Raises CoverError (missing, unreadable, truncated, too large).
    """
    path = Path(path)
    limit = max_side or MAX_SIDE
    with _open(path) as im:
        try:
            scale = limit / max(im.size)
            if scale < 1:
                im.draft(None, (max(1, round(im.width * scale)), max(1, round(im.height * scale))))
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
        except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
            raise CoverError("unreadable image", f"{path.name}: {err}") from None
    if max(rgb.size) > limit:
        rgb.thumbnail((limit, limit), Image.Resampling.BICUBIC)
    return rgb


def check_cover(path: str | Path, level: str = "header") -> tuple[str, tuple[int, int]]:
    """Raise CoverError if the cover is unusable; return its (PIL mode, (width, height)) in the file.

    level "header": open and `verify` (fast; catches non-images, bad PNG chunks, bombs, not every
    truncated JPEG); "full": decode the whole file through `open_cover` (catches truncation; JPEGs are
    decoded at 1/8 scale, which still reads every byte of the image data).
    """
    if level not in ("header", "full"):
        raise ValueError(f"check level must be 'header' or 'full', got {level!r}")
    path = Path(path)
    with _open(path) as im:
        mode, size = im.mode, im.size
        if level == "header":
            try:
                im.verify()
            except (OSError, SyntaxError, ValueError) as err:
                raise CoverError("unreadable image", f"{path.name}: {err}") from None
    if level == "full":
        open_cover(path, max_side=CHECK_SIDE)
    return mode, size
