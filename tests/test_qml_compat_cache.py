"""The compatibility job's cache runs nothing it did not verify (issue 19: a planted file in the
shared temp folder ran).

Offline: a small stand-in sdist plays qiskit-machine-learning's, with its own pinned hash.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
import test_qml_compat as compat

PLANTED = "raise SystemExit('planted code ran')\n"


def _sdist(path: Path, text: str) -> str:
    """Write a stand-in sdist holding ``test/__init__.py`` with ``text``; its SHA-256."""
    data = text.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"qiskit_machine_learning-{compat.VERSION}/test/__init__.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A private shared temp folder and cache, a stand-in sdist pinned as the real one, and a
    download that copies it (the old code reads the temp folder first)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.delenv("GPUQNN_QML_TESTS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = tmp_path / "good.tar.gz"
    monkeypatch.setattr(compat, "SDIST_SHA256", _sdist(good, "# the real tests\n"), raising=False)

    def download(dest: Path) -> Path:
        return Path(shutil.copy(good, dest / f"qiskit_machine_learning-{compat.VERSION}.tar.gz"))

    monkeypatch.setattr(compat, "_download", download, raising=False)
    return shared


def test_a_file_planted_at_the_old_shared_temp_path_is_not_run(offline):
    planted = offline / f"gpuqnn-qml-tests-{compat.VERSION}" / "test"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text(PLANTED)
    root = compat.fetch_tests()
    try:
        assert (root / "test" / "__init__.py").read_text() == "# the real tests\n"
        assert planted.parent not in (root, *root.parents)
        cache = Path(os.environ["XDG_CACHE_HOME"]) / "gpuqnn"
        assert cache.stat().st_mode & 0o777 == 0o700
        assert root.parent.stat().st_mode & 0o077 == 0  # a fresh private extraction
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def test_a_tampered_cached_sdist_is_refused_before_extraction(offline, tmp_path):
    root = compat.fetch_tests()  # downloads and caches the good one
    shutil.rmtree(root.parent)
    cached = tmp_path / "cache" / "gpuqnn" / f"qiskit_machine_learning-{compat.VERSION}.tar.gz"
    assert cached.is_file()
    _sdist(cached, PLANTED)
    before = set(offline.iterdir())
    with pytest.raises(compat.UnsafeCacheError, match="SHA-256.*refusing to extract"):
        compat.fetch_tests()
    assert set(offline.iterdir()) == before  # nothing extracted


def test_a_cache_folder_writable_by_others_is_refused(offline, tmp_path, monkeypatch):
    shared_cache = tmp_path / "open"
    shared_cache.mkdir()
    shared_cache.chmod(0o777)
    monkeypatch.setenv("GPUQNN_QML_TESTS_CACHE", str(shared_cache))
    with pytest.raises(compat.UnsafeCacheError, match="writable by nobody else"):
        compat.fetch_tests()
