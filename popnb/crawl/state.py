"""A crawl's state in OUT/crawl/, so a killed crawl resumes where it stopped and fetches no finished video twice.

options.json     what was asked; a resume must ask the same
listing.json     the listed pages and the hot lists (rewritten atomically)
videos.jsonl     one line per finished video: its record, or its `_field` and `_reason` for quarantine
uploaders.jsonl  one line per uploader: mid and followers
The .jsonl files are appended to and synced line by line; a line cut short by a kill is dropped on resume.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read_lines(path: Path) -> list[dict]:
    """The complete lines of a .jsonl file; an unfinished last line is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as f:
            f.truncate(len(complete))
    return [json.loads(line) for line in complete.decode("utf-8").splitlines()]


class CrawlState:
    """Load (or start) the state in `folder`; `options` must equal those it was started with."""

    def __init__(self, folder: Path, options: dict):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        saved_options = folder / "options.json"
        if saved_options.exists():
            saved = json.loads(saved_options.read_text())
            for name, value in options.items():
                if saved.get(name) != value:
                    raise ValueError(f"{folder} holds a crawl started with {name}={saved.get(name)!r}, not {value!r}: "
                                     "resume with the same options, or choose a new folder")
        else:
            write_atomic(saved_options, json.dumps(options, indent=1).encode())
        listing = folder / "listing.json"
        self.listing = (json.loads(listing.read_text()) if listing.exists()
                        else {"pages": {}, "end": None, "hot": None})  # pages: "pn" -> [[bvid, pubdate], ...]
        self.videos = {r["video_id"]: r for r in _read_lines(folder / "videos.jsonl")}
        self.followers = {r["mid"]: r["followers"] for r in _read_lines(folder / "uploaders.jsonl")}

    def save_listing(self) -> None:
        write_atomic(self.folder / "listing.json", json.dumps(self.listing).encode())

    def _append(self, name: str, record: dict) -> None:
        with (self.folder / name).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add_video(self, record: dict) -> None:
        """A finished video (never fetched again)."""
        self._append("videos.jsonl", record)
        self.videos[record["video_id"]] = record

    def add_uploader(self, mid: int, followers: int | None) -> None:
        self._append("uploaders.jsonl", {"mid": mid, "followers": followers})
        self.followers[mid] = followers
