"""Writing files whole or not at all: an export, a report download or a page set that fails
half-way never leaves half a file where an analyst would open it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_all_or_none", "write_atomically"]


def write_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename it into place.

    Returns
    -------
    Path
        ``path``. Its folder is created when missing.
    """
    [target] = write_all_or_none(Path(path).parent, {Path(path).name: data})
    return target


def write_all_or_none(folder: str | os.PathLike[str], files: Mapping[str, bytes]) -> list[Path]:
    """Write every named file into ``folder`` or none of them.

    Each goes to its own temporary name first (unique, so two writers never share one); only
    once all are written does each replace its target.

    Raises
    ------
    ValueError
        A name that would land outside ``folder`` (a path separator, ``..``); nothing is written.
    """
    home = Path(folder)
    home.mkdir(parents=True, exist_ok=True)
    resolved = home.resolve()
    for name in files:
        if (resolved / name).resolve().parent != resolved:
            raise ValueError(f"{name!r} would be saved outside {home}; nothing was written")
    staged: list[tuple[str, Path]] = []
    try:
        for name, data in files.items():
            handle, temporary = tempfile.mkstemp(dir=home, prefix=f".{name}.", suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            staged.append((name, Path(temporary)))
    except BaseException:
        for _, temporary in staged:
            temporary.unlink(missing_ok=True)
        raise
    targets = []
    for name, temporary in staged:
        os.replace(temporary, home / name)
        targets.append(home / name)
    return targets
