"""qiskit-machine-learning 0.9.1's own tests, run with gpuqnn's networks standing in.

The test folder comes from qiskit-machine-learning's source distribution (``pip download``,
cached under ``$GPUQNN_QML_TESTS_CACHE`` or the temp directory). A pytest subprocess runs the
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

import os
import shutil
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


def _cache_dir() -> Path:
    root = os.environ.get("GPUQNN_QML_TESTS_CACHE") or tempfile.gettempdir()
    return Path(root) / f"gpuqnn-qml-tests-{VERSION}"


def fetch_tests() -> Path:
    """The root of an extracted copy of the sdist's ``test`` package (cached).

    Raises:
        RuntimeError: the download failed (the message holds pip's output).
    """
    target = _cache_dir()
    if (target / "test" / "__init__.py").is_file():
        return target
    with tempfile.TemporaryDirectory() as work:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            f"qiskit-machine-learning=={VERSION}",
            "-d",
            work,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        archives = list(Path(work).glob("qiskit_machine_learning-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError((done.stdout + done.stderr)[-2000:])
        staging = Path(work) / "extract"
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if "/test/" in m.name and m.isfile()]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **safe)  # noqa: S202 - sdist from PyPI
        (top,) = list(staging.iterdir())
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(top, partial)
        try:
            partial.rename(target)
        except OSError:  # another process finished first
            shutil.rmtree(partial, ignore_errors=True)
    return target


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
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not download qiskit-machine-learning {VERSION}'s sdist: {exc}")
    outcomes = run_selection(root, spec, patched=True, report=tmp_path / "report.xml")
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
    with tempfile.TemporaryDirectory() as work:
        outcomes = run_selection(
            root, spec, patched="--baseline" not in argv, report=Path(work) / "report.xml"
        )
    for test, outcome in sorted(outcomes.items()):
        print(f"{outcome:8s} {test}")
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in set(outcomes.values())}
    print(f"{len(outcomes)} tests: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
