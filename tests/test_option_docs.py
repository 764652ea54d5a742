"""One text per simulator option: the networks' and primitives' docstrings (and so help()) are
built from gpuqnn._options.OPTION_DOCS, and that text names every value the checks accept."""

from __future__ import annotations

import pydoc
import re

import pytest

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._options import DTYPES, GRADIENT_METHODS, OPTION_DOCS, document_options
from gpuqnn.primitives import Estimator, Sampler

NETWORK_OPTIONS = ("device", "dtype", "gradient_method", "max_memory", "threads")
DOCUMENTED = [
    (EstimatorQNN, NETWORK_OPTIONS),
    (SamplerQNN, (*NETWORK_OPTIONS, "shots", "seed")),
    (Estimator, ("device", "dtype", "max_memory", "threads")),
    (Sampler, ("device", "dtype", "max_memory", "threads")),
]


def _words(text: str) -> str:
    """``text`` with its line breaks and indentation folded into single spaces."""
    return " ".join(text.split())


@pytest.mark.parametrize(("cls", "names"), DOCUMENTED, ids=lambda v: getattr(v, "__name__", ""))
def test_each_option_has_one_text_in_the_docstring_and_help(cls: type, names: tuple) -> None:
    doc = cls.__doc__ or ""
    shown = _words(pydoc.render_doc(cls, renderer=pydoc.plaintext).replace("|", " "))
    assert "{options" not in doc
    for name in names:
        entry = _words(f"{name}: {OPTION_DOCS[name]}")
        assert entry in _words(doc), name
        assert entry in shown, name
        assert len(re.findall(rf"^\s*{name}: ", doc, re.M)) == 1, f"{name} documented twice"


def test_the_texts_name_every_accepted_value() -> None:
    for device in ("auto", "cpu", "gpu", "cuda", "cuda:N", "cuda:all"):
        assert f'``"{device}"``' in OPTION_DOCS["device"]
    assert "LOCAL_RANK" in OPTION_DOCS["device"]
    for dtype in DTYPES:
        assert f'``"{dtype}"``' in OPTION_DOCS["dtype"]
    for method in GRADIENT_METHODS:
        assert f'``"{method}"``' in OPTION_DOCS["gradient_method"]


def test_a_missing_or_unknown_option_line_is_refused() -> None:
    class Plain:
        """Args:
        x: an argument.
        """

    class Unknown:
        """Args:
        {options: device, colour}
        """

    with pytest.raises(ValueError, match="no '\\{options"):
        document_options(Plain)
    with pytest.raises(ValueError, match="'colour'"):
        document_options(Unknown)
