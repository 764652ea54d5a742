"""qiskit-machine-learning 0.9.1's own tests, run with gpuqnn's networks standing in.

The test folder comes from qiskit-machine-learning's source distribution (``pip download``,
cached in a private per-user folder: ``$GPUQNN_QML_TESTS_CACHE``, else ``$XDG_CACHE_HOME/gpuqnn``
or ``~/.cache/gpuqnn``, 0700 and owned by the user). The sdist's SHA-256 is checked against a
pinned hash before anything is extracted, and every run extracts it afresh into a new private
temp folder, so nothing another user could plant is ever run. A pytest subprocess runs the
files that ``tests/compat/expected_differences.toml`` selects, with the plugin
``tests/compat/gpuqnn_qml_compat.py`` replacing qiskit-machine-learning's ``EstimatorQNN``,
``SamplerQNN`` and ``TorchConnector`` by gpuqnn's. Every test must pass (or skip, as it does on
qiskit-machine-learning itself), except those the file lists with a reason: tests that fail on
qiskit-machine-learning itself, and tests where gpuqnn is right and the test encodes
qiskit-machine-learning's behaviour. A listed test that passes makes the job fail too (the list
is stale).

``python tests/test_qml_compat.py [--baseline]`` runs the same selection and prints each
test's outcome; ``--baseline`` runs it on qiskit-machine-learning itself (no plugin).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

VERSION = "0.9.1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COMPAT = HERE / "compat"
SPEC = COMPAT / "expected_differences.toml"


def load_spec() -> dict:
    """The selection and the listed differences (see the file's comments)."""
    with SPEC.open("rb") as handle:
        spec = tomllib.load(handle)
    for section in ("deselect", "difference", "fails_on_qml"):
        for entry in spec.get(section, []):
            what = entry.get("test") or entry.get("keyword")
            if not what or not entry.get("reason"):
                raise ValueError(f"{SPEC.name}: [[{section}]] {what} needs a test and a reason")
            if section != "deselect" and "test" not in entry:
                raise ValueError(f"{SPEC.name}: [[{section}]] entries name a test id")
    return spec


SDIST_SHA256 = "42d74f1a324457994fbb52d7de15f50e35cf04e0e77e1e21958f6b75a4cda360"
"""SHA-256 of ``qiskit_machine_learning-0.9.1.tar.gz`` as PyPI serves it (``pip download`` then
``sha256sum``): nothing from the cache is extracted or run unless it matches."""

SDIST_NAME = f"qiskit_machine_learning-{VERSION}.tar.gz"


class DownloadError(RuntimeError):
    """pip could not download the sdist (no network): the job is skipped with pip's output."""


class UnsafeCacheError(RuntimeError):
    """The cache is not private to this user, or the cached sdist is not the pinned one: the
    job fails (never skipped, never run from it)."""


def cache_dir() -> Path:
    """This user's private cache folder: ``$GPUQNN_QML_TESTS_CACHE``, else
    ``$XDG_CACHE_HOME/gpuqnn``, else ``~/.cache/gpuqnn``; created 0700.

    Raises:
        UnsafeCacheError: the folder is a link, or not owned by this user, or writable by
            others (anyone else could swap the sdist between the check and its use).
    """
    root = os.environ.get("GPUQNN_QML_TESTS_CACHE")
    if root:
        path = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "gpuqnn"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise UnsafeCacheError(
            f"refusing the cache folder {path}: it must be a folder owned by this user "
            f"(uid {os.getuid()}) and writable by nobody else (it is uid {info.st_uid}, mode "
            f"{stat.filemode(info.st_mode)}); remove it or set GPUQNN_QML_TESTS_CACHE"
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(dest: Path) -> Path:
    """Download the sdist into ``dest`` with pip, which checks it against the pinned hash."""
    requirements = dest / "requirements.txt"
    requirements.write_text(f"qiskit-machine-learning=={VERSION} --hash=sha256:{SDIST_SHA256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--disable-pip-version-check", "--require-hashes", "-r", str(requirements)]
    command += ["-d", str(dest)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    archive = dest / SDIST_NAME
    if done.returncode != 0 or not archive.is_file():
        raise DownloadError((done.stdout + done.stderr)[-2000:])
    return archive


def fetch_sdist() -> Path:
    """The cached sdist, downloaded on first use; its SHA-256 checked against
    :data:`SDIST_SHA256` every time.

    Raises:
        DownloadError: the download failed (the message holds pip's output).
        UnsafeCacheError: see :func:`cache_dir`; or the sdist's hash differs.
    """
    cache = cache_dir()
    archive = cache / SDIST_NAME
    if not archive.is_file():
        with tempfile.TemporaryDirectory(dir=cache) as work:
            _download(Path(work)).replace(archive)
    digest = _sha256(archive)
    if digest != SDIST_SHA256:
        raise UnsafeCacheError(
            f"{archive} has SHA-256 {digest}, not the pinned {SDIST_SHA256} of "
            f"qiskit-machine-learning {VERSION}'s sdist: refusing to extract or run it; delete "
            "the file to download it again"
        )
    return archive


def fetch_tests() -> Path:
    """The root of a fresh private extraction (a new 0700 temp folder, the caller removes it)
    of the verified sdist's ``test`` package.

    Raises:
        DownloadError: the download failed.
        UnsafeCacheError: the cache or the sdist failed its checks (see :func:`fetch_sdist`).
    """
    archive = fetch_sdist()
    staging = Path(tempfile.mkdtemp(prefix="gpuqnn-qml-tests-"))
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/test/" in m.name and m.isfile()]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(staging, members=members, **safe)  # noqa: S202 - hash-checked sdist
    (top,) = list(staging.iterdir())
    return top


def run_selection(root: Path, spec: dict, patched: bool, report: Path) -> dict[str, str]:
    """Run the selected qiskit-machine-learning tests; test id -> outcome
    (``passed``, ``failed``, ``error`` or ``skipped``)."""
    ini = report.with_suffix(".ini")
    ini.write_text("[pytest]\n")  # none of this repository's or the sdist's settings
    env = dict(os.environ)
    paths = [str(REPO), str(COMPAT)] if patched else [str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    env.setdefault("QISKIT_PARALLEL", "FALSE")
    command = [sys.executable, "-m", "pytest", *spec["files"], "-q", "-p", "no:cacheprovider"]
    command += ["-c", str(ini), "--rootdir", str(root), f"--junitxml={report}"]
    if patched:
        command += ["-p", "gpuqnn_qml_compat"]
    keywords = []
    for entry in spec.get("deselect", []):
        if "test" in entry:
            command += ["--deselect", entry["test"]]
        if "keyword" in entry:
            keywords.append(f"not {entry['keyword']}")
    if keywords:
        command += ["-k", " and ".join(keywords)]
    subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    return _outcomes(report, root)


def _outcomes(report: Path, root: Path) -> dict[str, str]:
    """Test id (``file::Class::name`` as pytest writes it) -> outcome, from the JUnit report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        # "test.neural_networks.test_sampler_qnn.TestSamplerQNN": the longest prefix that is
        # a file is the module, the rest its class
        cut = next(
            (
                c
                for c in range(len(parts), 0, -1)
                if (root / ("/".join(parts[:c]) + ".py")).is_file()
            ),
            len(parts),
        )
        test_id = "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], case.get("name", "")])
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            outcome = "failed"
        elif "error" in kinds:
            outcome = "error"
        elif "skipped" in kinds:
            outcome = "skipped"
        else:
            outcome = "passed"
        outcomes[test_id] = outcome
    return outcomes


def test_qiskit_machine_learning_suite_passes_with_gpuqnn(tmp_path: Path) -> None:
    spec = load_spec()
    try:
        root = fetch_tests()
    except (DownloadError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not download qiskit-machine-learning {VERSION}'s sdist: {exc}")
    try:
        outcomes = run_selection(root, spec, patched=True, report=tmp_path / "report.xml")
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    assert len(outcomes) >= spec.get("minimum_tests", 1), (
        f"only {len(outcomes)} tests ran; see {tmp_path}"
    )
    allowed = {e["test"] for e in spec.get("difference", []) + spec.get("fails_on_qml", [])}
    unexpected = sorted(
        f"{test}: {outcome}"
        for test, outcome in outcomes.items()
        if outcome in ("failed", "error") and test not in allowed
    )
    stale = sorted(t for t in allowed if outcomes.get(t) == "passed")
    missing = sorted(t for t in allowed if t not in outcomes)
    assert not unexpected, "qiskit-machine-learning tests failing with gpuqnn:\n" + "\n".join(
        unexpected
    )
    assert not stale, f"listed in {SPEC.name} but passing now:\n" + "\n".join(stale)
    assert not missing, f"listed in {SPEC.name} but not run:\n" + "\n".join(missing)


def main(argv: list[str]) -> int:
    """Print each selected test's outcome, with gpuqnn (default) or on qml (``--baseline``)."""
    spec = load_spec()
    root = fetch_tests()
    try:
        with tempfile.TemporaryDirectory() as work:
            outcomes = run_selection(
                root, spec, patched="--baseline" not in argv, report=Path(work) / "report.xml"
            )
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    for test, outcome in sorted(outcomes.items()):
        print(f"{outcome:8s} {test}")
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in set(outcomes.values())}
    print(f"{len(outcomes)} tests: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
