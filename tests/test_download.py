"""The dataset downloader against local sources: file:// and a loopback HTTP server; failures fail fast."""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from lanet_core.data.download import SOURCES, download_dataset
from lanet_core.errors import DataError


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _busi_zip(path: Path) -> Path:
    """The owners' layout of Dataset_BUSI.zip (with a stray macOS folder)."""
    return _zip(path, {
        "Dataset_BUSI_with_GT/benign/benign (1).png": b"png-1",
        "Dataset_BUSI_with_GT/benign/benign (1)_mask.png": b"mask-1",
        "Dataset_BUSI_with_GT/malignant/malignant (1).png": b"png-2",
        "Dataset_BUSI_with_GT/normal/normal (1).png": b"png-3",
        "__MACOSX/Dataset_BUSI_with_GT/._benign": b"junk",
    })


def _busbra_zip(path: Path) -> Path:
    """The Zenodo archive unpacks to BUSBRA/; the importers want BUS-BRA/."""
    return _zip(path, {
        "BUSBRA/bus_data.csv": b"ID,Case\n",
        "BUSBRA/Images/bus_0001-l.png": b"img",
        "BUSBRA/Masks/mask_0001-l.png": b"mask",
        "BUSBRA/5-fold-cv.csv": b"ID\n",
    })


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/Dataset_BUSI.zip"


@pytest.fixture
def http_dir(tmp_path: Path):
    """Serve tmp_path/www over HTTP on a loopback port; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.rglob("*") if p.name.startswith("."))


def test_file_url_download_unpacks_busi_layout(tmp_path, caplog):
    archive = _busi_zip(tmp_path / "Dataset_BUSI.zip")
    dest = tmp_path / "data"
    with caplog.at_level(logging.WARNING):
        out = download_dataset("busi", dest, url=archive.as_uri())
    assert out == dest / "BUSI" / "Dataset_BUSI_with_GT"
    assert (out / "benign" / "benign (1)_mask.png").read_bytes() == b"mask-1"
    assert (out / "normal" / "normal (1).png").is_file()
    assert not (dest / "__MACOSX").exists() and _leftovers(dest) == []
    assert "NOT verified" in caplog.text and _sha256(archive) in caplog.text


def test_http_download_verifies_sha256_and_renames_busbra(http_dir, tmp_path):
    www, base = http_dir
    archive = _busbra_zip(www / "BUSBRA.zip")
    dest = tmp_path / "data"
    out = download_dataset("busbra", dest, url=f"{base}/BUSBRA.zip", sha256=_sha256(archive))
    assert out == dest / "BUS-BRA"
    assert (out / "bus_data.csv").read_bytes() == b"ID,Case\n"
    assert (out / "Masks" / "mask_0001-l.png").is_file()
    assert not (dest / "BUSBRA").exists() and _leftovers(dest) == []


def test_checksum_mismatch_discards_the_file(http_dir, tmp_path):
    www, base = http_dir
    _busi_zip(www / "Dataset_BUSI.zip")
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch .* expected sha256 0{64}, got [0-9a-f]{64}"):
        download_dataset("busi", dest, url=f"{base}/Dataset_BUSI.zip", sha256="0" * 64)
    assert not (dest / "BUSI").exists() and list(dest.iterdir()) == []


def test_unreachable_url_fails_fast_naming_url_and_manual_route(tmp_path):
    url = _closed_port_url()
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        download_dataset("busi", tmp_path / "data", url=url, timeout=5)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert url in msg and "Manual alternative" in msg and "scholar.cu.edu.eg" in msg
    assert list((tmp_path / "data").iterdir()) == []


def test_missing_file_url_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot download busbra from file://"):
        download_dataset("busbra", tmp_path / "data", url=(tmp_path / "absent.zip").as_uri())


def test_not_a_zip_and_wrong_layout(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(DataError, match="not a zip archive"):
        download_dataset("busi", tmp_path / "d1", url=junk.as_uri())
    other = _zip(tmp_path / "other.zip", {"something/else.txt": b"x"})
    with pytest.raises(DataError, match="holds no folder with bus_data.csv, Images, Masks"):
        download_dataset("busbra", tmp_path / "d2", url=other.as_uri())
    assert _leftovers(tmp_path / "d2") == [] and not (tmp_path / "d2" / "BUS-BRA").exists()


def test_present_dataset_is_not_downloaded_again(tmp_path):
    dest = tmp_path / "data"
    for sub in ("benign", "malignant"):
        (dest / "BUSI" / "Dataset_BUSI_with_GT" / sub).mkdir(parents=True)
    out = download_dataset("busi", dest, url=_closed_port_url())  # would fail if it touched the network
    assert out == dest / "BUSI" / "Dataset_BUSI_with_GT"


def test_incomplete_target_is_an_error(tmp_path):
    (tmp_path / "data" / "BUS-BRA").mkdir(parents=True)
    with pytest.raises(DataError, match="exists but lacks some of bus_data.csv"):
        download_dataset("busbra", tmp_path / "data", url=_closed_port_url())


def test_unknown_dataset_and_source_table():
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        download_dataset("mnist")
    assert SOURCES["busi"].url == "https://scholar.cu.edu.eg/Dataset_BUSI.zip" and SOURCES["busi"].sha256 is None
    assert "8231412" in SOURCES["busbra"].url
    assert len(SOURCES["busbra"].sha256 or "") == 64 and len(SOURCES["busbra"].md5 or "") == 32
