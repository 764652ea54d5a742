"""``python -m gpuqnn``: the command-line main job (see :mod:`gpuqnn._cli.main`)."""

from __future__ import annotations

from ._cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
