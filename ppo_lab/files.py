"""Atomic file writes: a crash mid-write leaves the previous file whole, never half a new one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write` a temporary file beside `path`, then rename it over `path` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers
    write(tmp)
    os.replace(tmp, path)


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Temp files a killed writer left in `directory` (the previous files are whole)."""
    stale = sorted(directory.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text_atomically(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))
