"""Public inputs: verified local copies and downloads (a local http mirror); a checksum mismatch, a
missing file or an unreachable mirror is a clear error and leaves nothing behind."""

from __future__ import annotations

import hashlib
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from crbnn.common.io import sha256_file
from crbnn.data.basis import load_basis
from crbnn.data.inputs import INPUTS, InputError, cached_inputs, fetch_input, input_url, resolve_mirror_url

NAME = "basis_for_compress.mat"


def test_pins_are_complete() -> None:
    for item in INPUTS.values():
        assert len(item.commit) == 40 and len(item.sha256) == 64
        assert item.url.startswith("https://raw.githubusercontent.com/") and item.commit in item.url


def test_local_copy_ok(tmp_path: Path, data_dir: Path) -> None:
    dest = tmp_path / "out" / NAME
    fetch_input(NAME, dest, data_dir=data_dir)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == INPUTS[NAME].sha256
    assert sorted(p.name for p in dest.parent.iterdir()) == [NAME]  # no temporary files left


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / NAME).write_bytes(b"not the basis")
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        fetch_input(NAME, out / NAME, data_dir=src)
    msg = str(err.value)
    assert NAME in msg and INPUTS[NAME].sha256 in msg and hashlib.sha256(b"not the basis").hexdigest() in msg
    assert not any(out.iterdir())


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=rf"{NAME} not found in data_dir"):
        fetch_input(NAME, tmp_path / "out" / NAME, data_dir=tmp_path)
    assert not (tmp_path / "out" / NAME).exists()


def test_public_basis(data_dir: Path) -> None:
    b = load_basis(data_dir / NAME, rank=13)
    assert b.u.shape == (1142, 13) and b.u.dtype == np.complex128
    np.testing.assert_allclose(b.u.conj().T @ b.u, np.eye(13), atol=1e-10)
    assert b.sha256 == hashlib.sha256(np.ascontiguousarray(b.u).tobytes()).hexdigest()


# ------------------------------------------------------------- downloads from a mirror (http)


@pytest.fixture()
def mirror(tmp_path: Path):
    """A temporary folder served over http://127.0.0.1:<free port> (http.server in a thread)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRBNN_DATA_DIR", raising=False)
    monkeypatch.delenv("CRBNN_MIRROR_URL", raising=False)


def test_mirror_download_fetches_and_caches(tmp_path: Path, data_dir: Path, mirror, monkeypatch) -> None:
    root, url = mirror
    shutil.copyfile(data_dir / NAME, root / NAME)
    _no_data_dir(monkeypatch)
    monkeypatch.setenv("CRBNN_MIRROR_URL", url + "/")  # a trailing slash is fine
    cache = tmp_path / "cache"
    got = cached_inputs(cache, names=[NAME], timeout=5)
    assert got == cache.resolve()
    assert sha256_file(cache / NAME) == INPUTS[NAME].sha256
    assert sorted(p.name for p in cache.iterdir()) == [NAME]  # no temporary files
    # cached: a second call does not download again (the mirror no longer has the file)
    (root / NAME).unlink()
    assert cached_inputs(cache, names=[NAME], timeout=5) == cache.resolve()


def test_mirror_corrupt_file_is_an_error_and_leaves_nothing(tmp_path: Path, mirror, monkeypatch) -> None:
    root, url = mirror
    (root / NAME).write_bytes(b"corrupted copy")
    _no_data_dir(monkeypatch)
    cache = tmp_path / "cache"
    with pytest.raises(InputError) as err:
        cached_inputs(cache, mirror_url=url, names=[NAME], timeout=5)
    msg = str(err.value)
    assert NAME in msg and INPUTS[NAME].sha256 in msg and hashlib.sha256(b"corrupted copy").hexdigest() in msg
    assert f"{url}/{NAME}" in msg
    assert not cache.exists() or not any(cache.iterdir())


def test_mirror_missing_file_is_an_error(tmp_path: Path, mirror) -> None:
    _, url = mirror
    with pytest.raises(InputError, match=rf"could not download {NAME} from {url}/{NAME}.*404"):
        fetch_input(NAME, tmp_path / "out" / NAME, mirror_url=url, timeout=5)
    assert not any((tmp_path / "out").iterdir())


def test_unreachable_mirror_fails_quickly(tmp_path: Path) -> None:
    # a closed port: connection refused
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(InputError, match=rf"could not download {NAME} from http://127.0.0.1:{port}/{NAME}"):
        fetch_input(NAME, tmp_path / "a" / NAME, mirror_url=f"http://127.0.0.1:{port}", timeout=2)
    # a server that accepts connections but never answers: the timeout ends the wait
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(InputError, match=r"timeout 1 s.*timed out"):
            fetch_input(NAME, tmp_path / "b" / NAME, mirror_url=url, timeout=1)
    assert time.monotonic() - t0 < 15
    assert not any((tmp_path / "a").iterdir()) and not any((tmp_path / "b").iterdir())


def test_mirror_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRBNN_MIRROR_URL", raising=False)
    assert resolve_mirror_url(None) is None and input_url(NAME) == INPUTS[NAME].url
    monkeypatch.setenv("CRBNN_MIRROR_URL", "http://m.example/x")
    assert resolve_mirror_url(None) == "http://m.example/x"
    assert resolve_mirror_url("https://c.example") == "https://c.example"  # the config wins
    assert input_url(NAME, "http://m.example/x/") == f"http://m.example/x/{NAME}"


def test_data_dir_env_must_hold_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRBNN_DATA_DIR", str(tmp_path))
    with pytest.raises(InputError, match="CRBNN_DATA_DIR.*missing"):
        cached_inputs()
