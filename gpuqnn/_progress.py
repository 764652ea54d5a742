"""A tiny text progress bar, library code: the command line (``python -m gpuqnn``) draws it,
and so does ``gpuqnn.distributed.predict(progress=True)`` where tqdm is not installed. Nothing
draws it on import, so importing gpuqnn prints nothing."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """A one-line progress bar on a text stream.

    On a terminal the line is redrawn in place (``\\r``); on anything else (a log file, a
    captured stream) only the finished line is written, so logs stay readable.

    Args:
        total: number of steps.
        label: text before the bar.
        stream: where to draw it (the CLI passes ``sys.stderr``).
        width: bar width in characters.
    """

    def __init__(self, total: int, label: str, stream: TextIO, width: int = 24) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream
        self.width = width
        self.done = 0
        self.note = ""
        self._start = time.perf_counter()
        self._live = bool(getattr(stream, "isatty", lambda: False)())
        if self._live:
            self._draw()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, steps: int = 1, note: str = "", grow: bool = False) -> None:
        """Advance by ``steps``; ``note`` is shown after the bar (e.g. the current loss).

        ``grow``: a total known only roughly in advance (an optimizer's objective evaluations:
        its line searches may take more than one per iteration) is raised to the steps done,
        instead of the count stopping at it.
        """
        if grow:
            self.total = max(self.total, self.done + steps)
        self.done = min(self.total, self.done + steps)
        self.note = note or self.note
        if self._live:
            self._draw()

    def line(self) -> str:
        """The bar's current text."""
        filled = round(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        note = f"  {self.note}" if self.note else ""
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:6.1f} s{note}"

    def _draw(self) -> None:
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self._live:
            self._draw()
            self.stream.write("\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
