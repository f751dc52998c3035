"""File primitives every layer uses: atomic writes (temp file beside the target, then rename) and checksums.

Nothing here knows about manifests, runs or studies; ``lanet_core.data``, ``runs``, ``reporting``,
``inference`` and ``study`` import from here (no module reaches into another's private helpers for these).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lanet_core.errors import StorageError

_UMASK = os.umask(0)
os.umask(_UMASK)


STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full: free space there and run the command again (an interrupted run resumes)",
    errno.EDQUOT: "the disk quota is exceeded: free space there and run the command again",
    errno.EROFS: "the folder is on a read-only file system: choose a writable output folder (--out, or the "
                 "profile's `output`), or copy the results somewhere writable",
    errno.EACCES: "permission denied: make the folder writable for this user, or choose another output folder",
    errno.EPERM: "operation not permitted: make the folder writable for this user, or choose another output folder",
}


def storage_error(exc: BaseException, path: str | os.PathLike, action: str = "write") -> StorageError | None:
    """A one-line :class:`StorageError` for a disk-full / read-only / permission failure of ``path`` (``None``
    for any other error). torch's serializer reports a full disk as a ``RuntimeError`` ("unexpected pos",
    "file write failed"), recognised here too."""
    code = getattr(exc, "errno", None)
    if code not in STORAGE_ERRNOS and isinstance(exc, RuntimeError) and re.search(
            r"unexpected pos|file write failed|PytorchStreamWriter failed", str(exc)):
        code = errno.ENOSPC
    if code not in STORAGE_ERRNOS:
        return None
    return StorageError(code, f"cannot {action} {path}: {STORAGE_ERRNOS[code]}")


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p`` with a one-line :class:`StorageError` on a read-only or full disk."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (storage_error(exc, path, "create the folder") or exc) from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temporary file beside ``path`` and rename it into place (readers never see half a file).

    A full or read-only disk raises a one-line :class:`StorageError` naming ``path``, and no temp file stays.
    """
    path = Path(path)
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise (storage_error(exc, path) or exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual default
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        err = storage_error(exc, path) if isinstance(exc, OSError) else None
        if err is not None:
            raise err from None
        raise


TEMP_FILE = re.compile(r"^\..+\.tmp$")  # the temp names of atomic_write_bytes and the trainer's checkpoints


def remove_orphan_temps(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete temp files (``.<name>.<...>.tmp``) that a killed or failed writer left in ``folder``.

    Call it only while holding the folder's claim (no other writer is active). Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for p in found:
        if p.is_file() and TEMP_FILE.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


_UNSAFE = re.compile(r"[^A-Za-z0-9._() +-]")


def safe_filename(name: str, taken: set[str] | None = None) -> str:
    """``name`` as one file name inside an output folder: separators, ``..``, control and shell characters
    replaced by ``_`` (never a path, never hidden, at most 120 characters). With ``taken`` (names already used,
    case-folded), a clash gets ``-2``, ``-3``, ... and the result is added to ``taken``."""
    base = _UNSAFE.sub("_", str(name)).strip(" .") or "image"
    base = re.sub(r"\.{2,}", "_", base)[:120]
    out = base
    if taken is not None:
        k = 2
        while out.casefold() in taken:
            out, k = f"{base}-{k}", k + 1
        taken.add(out.casefold())
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def record_json(obj: Any) -> str:
    """The JSON text of a run record: indented, numpy scalars as numbers, NaN/inf as ``null``, ``\n``-terminated."""

    def default(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        return str(o)

    def clean(o):
        if isinstance(o, float) and not np.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.floating):
            return clean(float(o))
        return o

    return json.dumps(clean(obj), indent=2, sort_keys=False, default=default) + "\n"


def record_csv(df: pd.DataFrame) -> str:
    """The CSV text of a run record's table (no index, ``\n`` line ends, 6 significant digits)."""
    return df.to_csv(index=False, lineterminator="\n", float_format="%.6g")
