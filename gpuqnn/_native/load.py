"""The compiled module of the native engine, or None where it was not built (no C++ compiler
at install time): then everything runs on the NumPy block engine, and one INFO record says so.
"""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType

logger = logging.getLogger(__name__)


@functools.cache
def load_core() -> ModuleType | None:
    """``gpuqnn._native._core``, or None (logged once, at INFO, with the reason)."""
    try:
        return importlib.import_module("gpuqnn._native._core")
    except ImportError as exc:
        logger.info(
            "the native CPU engine is not built (%s): the NumPy block engine runs every pass; "
            "reinstall gpuqnn where a C++ compiler exists to build it",
            exc,
        )
        return None
