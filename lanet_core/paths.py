"""Where things live: the project root, the data root and the on-disk caches.

Data-root lookup order: ``$LANET_DATA_ROOT``, then ``<project>/data``, then ``<project>/../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from lanet_core.errors import LanetError

PACKAGE_DIR = Path(__file__).resolve().parent

HOW_TO_GET_DATA = """\
How to obtain the datasets:
  BUSI    (Al-Dhabyani et al., Data in Brief 2020): `lanet download busi` with internet access, or download
          Dataset_BUSI.zip from https://scholar.cu.edu.eg/?q=afahmy/pages/dataset and unpack it so that
          <data root>/BUSI/Dataset_BUSI_with_GT/{benign,malignant}/ exist.
  BUS-BRA (Gomez-Flores et al., Med Phys 2024; Zenodo doi:10.5281/zenodo.8231412): `lanet download busbra`,
          or unpack the Zenodo archive so that <data root>/BUS-BRA/{Images,Masks,bus_data.csv} exist.
Then point LANET_DATA_ROOT at the folder holding BUSI/ and BUS-BRA/ (or put them in ./data)."""


class DataRootNotFound(LanetError, FileNotFoundError):
    """None of the data-root candidates holds the requested files."""


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml`` above this package), else the cwd."""
    for parent in [PACKAGE_DIR, *PACKAGE_DIR.parents]:
        if (parent / "pyproject.toml").is_file() and (parent / "lanet_core").is_dir():
            return parent
    return Path.cwd()


def data_root_candidates() -> list[Path]:
    """The places searched for data, in order."""
    out: list[Path] = []
    env = os.environ.get("LANET_DATA_ROOT")
    if env:
        out.append(Path(env).expanduser())
    root = project_root()
    out.append(root / "data")
    out.append((root / ".." / "shared" / "data").resolve())
    return out


def find_data_root(required: Sequence[str] = ()) -> Path:
    """The first candidate data root that holds every path in ``required`` (relative paths).

    Raises :class:`DataRootNotFound` listing the places tried and how to obtain the data.
    """
    if required and all(Path(r).is_absolute() for r in required):
        # a manifest with absolute paths (e.g. one written for `lanet predict`) needs no data root
        if all(Path(r).exists() for r in required):
            return Path(Path(required[0]).anchor)
    tried = []
    for cand in data_root_candidates():
        if cand.is_dir() and all((cand / r).exists() for r in required):
            return cand
        tried.append(str(cand))
    need = ", ".join(required) if required else "a data folder"
    raise DataRootNotFound(
        f"no data root holds {need}. Tried, in order: " + "; ".join(tried) + "\n" + HOW_TO_GET_DATA
    )


def cache_dir() -> Path:
    """Root of lanet's on-disk caches (``$LANET_CACHE_DIR``, else ``~/.cache/lanet``)."""
    env = os.environ.get("LANET_CACHE_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "lanet"
    path.mkdir(parents=True, exist_ok=True)
    return path


def manifests_dir() -> Path:
    return project_root() / "data_manifests"


def results_dir() -> Path:
    return Path(os.environ.get("LANET_RESULTS_DIR", project_root() / "results"))


ALLOW_OUTSIDE_ENV = "LANET_ALLOW_OUTSIDE_DATA_ROOT"


def outside_root_allowed() -> bool:
    """``$LANET_ALLOW_OUTSIDE_DATA_ROOT=1`` (or the CLI's ``--allow-outside-data-root``): manifest paths may be
    absolute or climb out of the data root. Off by default: a manifest from elsewhere is untrusted."""
    return os.environ.get(ALLOW_OUTSIDE_ENV, "") not in ("", "0", "false", "no")


def outside_root_problem(root: Path, rel: str) -> str | None:
    """Why the manifest path ``rel`` may not be read under ``root`` (an absolute path elsewhere, or ``..`` leaving
    it), or None. Lexical (symlinks inside the data root are followed as usual)."""
    if outside_root_allowed():
        return None
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, rel))  # an absolute ``rel`` stays itself
    if full == base or full.startswith(base.rstrip(os.sep) + os.sep):
        return None
    if os.path.isabs(rel):
        return f"absolute path {rel!r} lies outside the data root {root}"
    return f"path {rel!r} leaves the data root {root}"


def data_file(root: Path, rel: str) -> Path:
    """``root / rel`` for a path read from a manifest, refused (:class:`DataError`) when it lies outside the data
    root, unless allowed explicitly (:func:`outside_root_allowed`)."""
    from lanet_core.errors import DataError

    why = outside_root_problem(Path(root), str(rel))
    if why:
        raise DataError(f"{why} (set {ALLOW_OUTSIDE_ENV}=1 or pass --allow-outside-data-root to allow it)")
    return Path(root) / rel
