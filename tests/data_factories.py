"""Small good and bad inputs for the data-layer tests: covers of every awkward kind and tiny crawls."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pandas as pd
from PIL import Image

COVER_SIZE = (64, 36)  # width, height


def gradient(mode: str = "RGB", size: tuple[int, int] = COVER_SIZE) -> Image.Image:
    """A smooth image (real pixel data, small files) in `mode`."""
    return Image.linear_gradient("L").resize(size).convert(mode)


def save_jpeg(path: Path, mode: str = "RGB", size: tuple[int, int] = COVER_SIZE) -> Path:
    gradient(mode, size).save(path, "JPEG", quality=90)
    return path


def save_truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in half: its header is fine, its pixel data ends early."""
    save_jpeg(path, size=(320, 180))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def save_not_an_image(path: Path) -> Path:
    """What a failed download often leaves behind: an error page under an image name."""
    path.write_text("<html><body>404 Not Found</body></html>")
    return path


def save_rgba_png(path: Path) -> Path:
    """Left half transparent, right half opaque red."""
    im = Image.new("RGBA", COVER_SIZE, (255, 0, 0, 255))
    im.paste((0, 0, 255, 0), (0, 0, COVER_SIZE[0] // 2, COVER_SIZE[1]))
    im.save(path, "PNG")
    return path


def save_palette_png(path: Path) -> Path:
    """Palette image, index 0 (green) transparent in the left half, index 1 (blue) opaque on the right."""
    im = Image.new("P", COVER_SIZE, 1)
    im.putpalette([0, 255, 0, 0, 0, 255] + [0] * 762)
    im.paste(0, (0, 0, COVER_SIZE[0] // 2, COVER_SIZE[1]))
    im.save(path, "PNG", transparency=0)
    return path


def save_bomb_png(path: Path, side: int = 20_000) -> Path:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * (side + 1))) + chunk(b"IEND", b""))
    return path


def good_row(video_id: str, /, **fields) -> dict:
    """A valid crawl row in our column names (values as strings); its cover is `<video_id>.jpg`."""
    n = sum(map(ord, video_id))
    row = {"video_id": video_id, "title": f"title of {video_id}", "cover": f"{video_id}.jpg",
           "views": str(1000 + n), "likes": str(100 + n % 7), "coins": "3", "favorites": "5", "shares": "0"}
    return {**row, **fields}


def good_rows(folder: Path, ids) -> list[dict]:
    """good_row for each id, with its JPEG cover written into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        save_jpeg(folder / f"{i}.jpg")
    return [good_row(i) for i in ids]


def write_crawl(folder: Path, rows: list[dict], name: str = "crawl.csv", encoding: str = "utf-8") -> Path:
    """Write rows as a crawler would (a CSV of strings) to folder/name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False, encoding=encoding)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under folder -> (size, mtime ns, content): compare before/after to prove nothing was written."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def save_outside_cover(base: Path) -> Path:
    """A real JPEG at base/elsewhere/secret.jpg: a file a cover path must never reach."""
    (base / "elsewhere").mkdir(parents=True, exist_ok=True)
    return save_jpeg(base / "elsewhere" / "secret.jpg")


def ranking_rows(*titles_and_authors: tuple[str, str]) -> list[dict]:
    """Rows of a real ranking table (no id column, no covers): author, title, views, like, coins, collect,
    share, funs."""
    return [{"author": author, "title": title, "views": str(1000 + i), "like": "10", "coins": "2", "collect": "3",
             "share": "1", "funs": "500"} for i, (title, author) in enumerate(titles_and_authors)]


RANKING_MAP = {"uploader": "author", "likes": "like", "favorites": "collect", "shares": "share", "followers": "funs"}


def opened_paths(monkeypatch) -> list[Path]:
    """Record (resolved) every path PIL opens from now on: proves which files were read."""
    opened, real_open = [], Image.open

    def spy(fp, *args, **kwargs):
        if isinstance(fp, (str, Path)):
            opened.append(Path(fp).resolve())
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    return opened
