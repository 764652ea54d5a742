"""The acceptance run's harness: stages in order under one deadline, each recorded (status,
seconds, details, error) in a JSON report rewritten as every stage starts and ends. A stage ends
``ok``; ``failed`` when it raised or called :meth:`StageContext.fail` (later stages still run);
``skipped`` when its precheck gave a reason, it would start past the deadline, its estimate does
not fit the time left, or it raised :class:`Skip`."""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OK, FAILED, SKIPPED, PENDING, RUNNING = "ok", "failed", "skipped", "pending", "running"
TRACEBACK_LINES = 25  # of a failed stage's traceback kept in the report (its tail)


class Skip(Exception):
    """Raised by a stage that finds it cannot run here; the message says why."""


@dataclass
class StageContext:
    """What a running stage sees: the ``clock()`` time by which it should finish (keeping time
    for the later stages), the checks that failed and a one-line summary it sets."""

    deadline: float
    clock: Callable[[], float] = time.monotonic
    failures: list[str] = field(default_factory=list)
    summary: str = ""

    def time_left(self) -> float:
        """Seconds until :attr:`deadline` (negative once past it)."""
        return self.deadline - self.clock()

    def fail(self, message: str) -> None:
        """Record a check that did not pass: the stage goes on, and ends ``failed``."""
        self.failures.append(message)


@dataclass(frozen=True)
class Stage:
    """One stage: ``run`` returns its details, ``estimate_s`` is kept for it while earlier
    stages run, ``precheck`` says why it cannot run here (or None)."""

    name: str
    title: str
    run: Callable[[StageContext], dict[str, Any]]
    estimate_s: float
    precheck: Callable[[], str | None] | None = None


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON: NumPy as Python, tuples as lists, non-finite floats and paths
    as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value) if isinstance(value, Path) else repr(value)


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(jsonable(report), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def error_record(exc: BaseException) -> dict[str, str]:
    """Type, message and the traceback's last :data:`TRACEBACK_LINES` lines of ``exc``."""
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()
    tail = "\n".join(lines[-TRACEBACK_LINES:])
    return {"type": type(exc).__name__, "message": str(exc), "traceback_tail": tail}


class Harness:
    """Runs stages in order under a deadline ``budget_s`` after :meth:`run` starts and keeps
    the JSON report at ``out`` current; ``meta`` are its top-level entries, ``echo`` gets a line
    per stage as it starts and ends."""

    def __init__(
        self,
        stages: Sequence[Stage],
        out: str | os.PathLike,
        budget_s: float,
        meta: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.stages = list(stages)
        self.out = Path(out)
        self.budget_s = float(budget_s)
        self.clock = clock
        self.echo = echo or (lambda _line: None)
        self._start = clock()
        self.report: dict[str, Any] = {
            **(meta or {}),
            "budget_s": self.budget_s,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "finished": None,
            "elapsed_s": 0.0,
            "stages": [{"name": s.name, "title": s.title, "status": PENDING} for s in self.stages],
            "summary": {},
        }

    def run(self) -> dict[str, Any]:
        """Run every stage (or skip it) and return the final report (also written)."""
        self._start = self.clock()
        deadline = self._start + self.budget_s
        self._write()
        for index, stage in enumerate(self.stages):
            record = self.report["stages"][index]
            try:
                self._run_stage(index, stage, record, deadline)
            except KeyboardInterrupt:
                record.update(status=FAILED, reason="interrupted (Ctrl-C)")
                for later in self.report["stages"][index + 1 :]:
                    later.update(status=SKIPPED, reason="the run was interrupted")
                self._finish()
                raise
            self._write()
        self._finish()
        return self.report

    @property
    def exit_status(self) -> int:
        """0, or 1 when a stage failed."""
        return int(any(r["status"] == FAILED for r in self.report["stages"]))

    def _run_stage(self, index: int, stage: Stage, record: dict[str, Any], deadline: float) -> None:
        label = f"[{index + 1}/{len(self.stages)}] {stage.name}"
        reason = self._skip_reason(stage, deadline)
        if reason is not None:
            record.update(status=SKIPPED, reason=reason, seconds=0.0)
            self.echo(f"{label}: skipped ({reason})")
            return
        now = self.clock()
        # keep for the later stages that will run what they estimate
        later = self.stages[index + 1 :]
        reserve = sum(s.estimate_s for s in later if s.precheck is None or s.precheck() is None)
        context = StageContext(min(deadline, max(now + stage.estimate_s, deadline - reserve)))
        context.clock = self.clock
        record.update(status=RUNNING, estimate_s=stage.estimate_s)
        self._write()
        self.echo(f"{label}: {stage.title} ...")
        try:
            details = stage.run(context)
        except Skip as exc:
            record.update(status=SKIPPED, reason=str(exc))
        except Exception as exc:  # a stage's failure is recorded; the next stages still run
            record.update(status=FAILED, error=error_record(exc))
        else:
            record.update(status=FAILED if context.failures else OK, details=details)
            if context.failures:
                record["failures"] = context.failures
        record["seconds"] = round(self.clock() - now, 3)
        if context.summary:
            record["summary"] = context.summary
        self.echo(f"{label}: {_outcome(record)}")

    def _skip_reason(self, stage: Stage, deadline: float) -> str | None:
        reason = None if stage.precheck is None else stage.precheck()
        left = deadline - self.clock()
        if reason is None and left <= 0:
            reason = f"past the deadline (--budget-s {self.budget_s:g} spent)"
        elif reason is None and stage.estimate_s > left:
            reason = (
                f"its estimated {stage.estimate_s:.0f} s do not fit the {left:.0f} s left of "
                f"--budget-s {self.budget_s:g}"
            )
        return reason

    def _finish(self) -> None:
        statuses = [r["status"] for r in self.report["stages"]]
        self.report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.report["summary"] = {
            status: statuses.count(status) for status in (OK, FAILED, SKIPPED)
        }
        self.report["summary"]["exit_status"] = self.exit_status
        self._write()

    def _write(self) -> None:
        self.report["elapsed_s"] = round(self.clock() - self._start, 3)
        write_json(self.out, self.report)


def _outcome(record: dict[str, Any]) -> str:
    text = f"{record['status']} ({record.get('seconds', 0.0):.1f} s)"
    if record["status"] == SKIPPED:
        text += f": {record.get('reason', '')}"
    elif "error" in record:
        text += f": {record['error']['type']}: {record['error']['message']}"
    elif record.get("failures"):
        text += f": {'; '.join(record['failures'][:5])}"
    return text + (f" -- {record['summary']}" if record.get("summary") else "")
