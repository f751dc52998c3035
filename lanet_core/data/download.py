"""Download BUSI or BUS-BRA from the official source and unpack it into the layout the importers expect.

``dest/BUSI/Dataset_BUSI_with_GT/{benign,malignant,normal}/`` and ``dest/BUS-BRA/{bus_data.csv,Images,Masks}``.
The archive streams to a temporary file beside ``dest``, is checked against the published checksum when one
is known, unpacked into a staging folder and moved into place, so an interrupted run leaves nothing half-done.
Without network the call fails within :data:`TIMEOUT_S` seconds with a message naming the URL and the manual
alternative.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lanet_core.errors import DataError
from lanet_core.paths import project_root

log = logging.getLogger(__name__)

#: Seconds to wait for a connection or for the next block of data before giving up.
TIMEOUT_S = 15.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and where it goes under the data root."""

    name: str
    url: str
    target: str  # folder under the data root that the importers read
    required: tuple[str, ...]  # entries of the dataset folder that prove it is complete
    citation: str
    manual: str  # how to get it without this downloader
    sha256: str | None = None
    md5: str | None = None  # Zenodo publishes md5 checksums


SOURCES: dict[str, DatasetSource] = {
    "busi": DatasetSource(
        name="busi",
        url="https://scholar.cu.edu.eg/Dataset_BUSI.zip",
        target="BUSI/Dataset_BUSI_with_GT",
        required=("benign", "malignant"),
        citation="Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
        "Data in Brief 28:104863, 2020. doi:10.1016/j.dib.2019.104863",
        manual="download Dataset_BUSI.zip from https://scholar.cu.edu.eg/?q=afahmy/pages/dataset (or the Kaggle "
        "mirror 'Breast Ultrasound Images Dataset') and unpack it so that <data root>/BUSI/Dataset_BUSI_with_GT/ "
        "holds benign/ and malignant/",
        sha256=None,  # no checksum is published for this archive
    ),
    "busbra": DatasetSource(
        name="busbra",
        url="https://zenodo.org/records/8231412/files/BUSBRA.zip?download=1",
        target="BUS-BRA",
        required=("bus_data.csv", "Images", "Masks"),
        citation="Gomez-Flores W, Gregorio-Calas MJ, Coelho de Albuquerque Pereira W. BUS-BRA: A breast ultrasound "
        "dataset for assessing computer-aided diagnosis systems. Medical Physics 51:3110-3123, 2024. "
        "doi:10.1002/mp.16812; data doi:10.5281/zenodo.8231412",
        manual="download BUSBRA.zip from https://zenodo.org/records/8231412 (doi:10.5281/zenodo.8231412) and unpack "
        "it so that <data root>/BUS-BRA/ holds bus_data.csv, Images/ and Masks/",
        # md5 as listed on the Zenodo record; sha256 as recorded by torch-em's BUS-BRA loader for the same file.
        sha256="ba3e6ed19cc37c682d8d39e25435bbf8a555a12cb7e641b5f2117685c95580ff",
        md5="1f8b2be6476d58fc97bfb5e5a1ea9bab",
    ),
}


def is_complete(folder: Path, source: DatasetSource) -> bool:
    """Whether ``folder`` holds every entry the dataset's importer needs."""
    return folder.is_dir() and all((folder / r).exists() for r in source.required)


def _fetch(url: str, into: Path, source: DatasetSource, timeout: float) -> tuple[str, str]:
    """Stream ``url`` into the file ``into``; returns its (sha256, md5). DataError on any network failure."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": "lanet-downloader"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(into, "wb") as out:
            size = response.headers.get("Content-Length")
            log.info("downloading %s from %s%s", source.name, url, f" ({int(size) / 1e6:.1f} MB)" if size else "")
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"cannot download {source.name} from {url}: {reason} (no network, or the server is unreachable).\n"
            f"Manual alternative: {source.manual}, where <data root> is {into.parent} or any folder that "
            f"LANET_DATA_ROOT names."
        ) from exc
    return sha.hexdigest(), md5.hexdigest()


def _verify(url: str, got: tuple[str, str], sha256: str | None, md5: str | None) -> None:
    """Compare the downloaded file's checksums with the expected ones; warn when nothing can be verified."""
    got_sha, got_md5 = got
    for kind, want, have in (("sha256", sha256, got_sha), ("md5", md5, got_md5)):
        if want and want.lower() != have:
            raise DataError(f"checksum mismatch for {url}: expected {kind} {want}, got {have}; the file was discarded")
    if not sha256 and not md5:
        log.warning("no checksum known for %s: the download was NOT verified. Its sha256 is %s "
                    "(pass --sha256 to pin it next time)", url, got_sha)


def _find_dataset_folder(root: Path, source: DatasetSource) -> Path | None:
    """The shallowest folder under ``root`` (itself included) that holds the dataset's required entries."""
    for folder, _, _ in sorted(os.walk(root), key=lambda t: (t[0].count(os.sep), t[0])):
        if is_complete(Path(folder), source):
            return Path(folder)
    return None


def _unpack(archive: Path, url: str, target: Path, source: DatasetSource) -> None:
    """Unzip ``archive`` into a staging folder beside ``target`` and move the dataset folder into place."""
    if not zipfile.is_zipfile(archive):
        raise DataError(f"the file downloaded from {url} is not a zip archive")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".lanet-unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)  # zipfile drops absolute paths and '..' components
        found = _find_dataset_folder(staging, source)
        if found is None:
            raise DataError(f"the archive from {url} holds no folder with {', '.join(source.required)}")
        os.replace(found, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_dataset(
    name: str,
    dest: Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
    *,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download and unpack ``name`` (``busi`` or ``busbra``) under the data root ``dest`` (default ``<project>/data``).

    ``url`` replaces the official source (a mirror, or ``file://`` for testing); the published checksums are then
    not applied and only ``sha256`` (if given) is checked. Returns the dataset folder (the importer's ``--src``).
    Does nothing when the dataset is already there.
    """
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(SOURCES)}")
    source = SOURCES[name]
    dest = Path(dest) if dest is not None else project_root() / "data"
    target = dest / source.target
    if is_complete(target, source):
        log.info("%s is already present under %s; nothing downloaded", name, target)
        return target
    if target.exists():
        raise DataError(f"{target} exists but lacks some of {', '.join(source.required)}; remove it and retry")
    official = url is None or url == source.url
    url = url or source.url
    want_sha = sha256 or (source.sha256 if official else None)
    want_md5 = source.md5 if official and not sha256 else None
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".zip.part", dir=dest)
    os.close(fd)
    archive = Path(tmp)
    try:
        _verify(url, _fetch(url, archive, source, timeout), want_sha, want_md5)
        _unpack(archive, url, target, source)
    finally:
        archive.unlink(missing_ok=True)
    log.info("%s unpacked to %s. Please cite: %s", name, target, source.citation)
    return target
