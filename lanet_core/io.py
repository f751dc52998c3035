"""File primitives every layer uses: atomic writes (temp file beside the target, then rename) and checksums.

Nothing here knows about manifests, runs or studies; ``lanet_core.data``, ``runs``, ``reporting``,
``inference`` and ``study`` import from here (no module reaches into another's private helpers for these).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temporary file beside ``path`` and rename it into place (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual default
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
