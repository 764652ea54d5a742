"""The acceptance script's stage runner: stages in order under one deadline, each recorded
(status, seconds, details, error) in a JSON report that is rewritten as every stage starts and
finishes, so that a run cut short still leaves a readable report.

A stage is a function of a :class:`StageContext` returning a dict of details. It ends:

- ``ok``: it returned and recorded no failed check;
- ``failed``: it raised (type, message and the traceback's tail are recorded; later stages
  still run), or it called :meth:`StageContext.fail` for a check that did not pass (it goes on
  and returns its details);
- ``skipped``: its ``precheck`` gave a reason (e.g. no GPU), it would start after the deadline,
  its estimated seconds do not fit the time left, or it raised :class:`Skip`.

Nothing here prints: the caller passes ``echo`` (the script passes ``print``).
"""

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
TRACEBACK_LINES = 25
"""Lines of a failed stage's traceback kept in the report (its tail)."""


class Skip(Exception):
    """Raised by a stage that finds it cannot run here; the message says why."""


@dataclass
class StageContext:
    """What a running stage sees.

    Attributes:
        deadline: ``clock()`` time by which the stage should finish (it keeps time for the
            stages after it): stages with optional work check :meth:`time_left` between parts.
        clock: the runner's clock (seconds).
        failures: the checks that did not pass (see :meth:`fail`).
        summary: one line for the console and the report, set by the stage.
    """

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
    """One stage.

    Attributes:
        name: short identifier (the report's key).
        title: what it checks, in a few words.
        run: the stage; returns its details.
        estimate_s: seconds it is expected to take; it is skipped when they do not fit the
            time left, and this much is kept for it while earlier stages run.
        precheck: returns why the stage cannot run here (then skipped), or None.
    """

    name: str
    title: str
    run: Callable[[StageContext], dict[str, Any]]
    estimate_s: float
    precheck: Callable[[], str | None] | None = None

    def reason_not_to_run(self) -> str | None:
        """The precheck's reason, or None."""
        return None if self.precheck is None else self.precheck()


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as Python numbers and lists, tuples as lists,
    paths as strings, and non-finite floats as strings (strict JSON has no NaN or inf)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(jsonable(report), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def error_record(exc: BaseException) -> dict[str, str]:
    """Type, message and the traceback's last :data:`TRACEBACK_LINES` lines of ``exc``."""
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback_tail": "\n".join(lines[-TRACEBACK_LINES:]),
    }


class StageRunner:
    """Runs stages in order under a deadline and keeps the JSON report at ``out`` current.

    Args:
        stages: the stages, in order.
        out: the report's path.
        budget_s: seconds from :meth:`run`'s start to the deadline.
        meta: top-level entries of the report (device, options, ...).
        clock: monotonic seconds (tests pass a fake one).
        echo: called with one line per stage as it starts and ends (default: silent).
    """

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
        self._start = start = self.clock()
        deadline = start + self.budget_s
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

    # ---- one stage -------------------------------------------------------------------------
    def _run_stage(self, index: int, stage: Stage, record: dict[str, Any], deadline: float) -> None:
        label = f"[{index + 1}/{len(self.stages)}] {stage.name}"
        reason = self._skip_reason(stage, deadline)
        if reason is not None:
            record.update(status=SKIPPED, reason=reason, seconds=0.0)
            self.echo(f"{label}: skipped ({reason})")
            return
        now = self.clock()
        reserve = self._reserve(index)
        stage_deadline = min(deadline, max(now + stage.estimate_s, deadline - reserve))
        context = StageContext(stage_deadline, self.clock)
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
        self.echo(f"{label}: {self._outcome(record)}")

    def _skip_reason(self, stage: Stage, deadline: float) -> str | None:
        reason = stage.reason_not_to_run()
        if reason is not None:
            return reason
        left = deadline - self.clock()
        if left <= 0:
            return f"past the deadline (--budget-s {self.budget_s:g} spent)"
        if stage.estimate_s > left:
            return (
                f"its estimated {stage.estimate_s:.0f} s do not fit the {left:.0f} s left of "
                f"--budget-s {self.budget_s:g}"
            )
        return None

    def _reserve(self, index: int) -> float:
        """Seconds kept for the later stages that will run (their estimates)."""
        return sum(s.estimate_s for s in self.stages[index + 1 :] if s.reason_not_to_run() is None)

    @staticmethod
    def _outcome(record: dict[str, Any]) -> str:
        text = f"{record['status']} ({record.get('seconds', 0.0):.1f} s)"
        if record["status"] == SKIPPED:
            text += f": {record.get('reason', '')}"
        elif "error" in record:
            text += f": {record['error']['type']}: {record['error']['message']}"
        elif record.get("failures"):
            text += f": {'; '.join(record['failures'][:5])}"
        if record.get("summary"):
            text += f" -- {record['summary']}"
        return text

    # ---- the report ------------------------------------------------------------------------
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
