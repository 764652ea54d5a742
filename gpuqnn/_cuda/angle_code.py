"""The angle table as C: each slot's angle and its derivatives by the parameter columns, written
as double-precision expressions for the generated kernels (:mod:`.codegen`), which evaluate them
per sample in registers from the raw parameter rows.

Expressions come from :meth:`gpuqnn._compile.AngleTable.symbolic` (sympy) through sympy's C99
printer, with every number written as a double literal (pi included: NVRTC defines no
``M_PI``). Everything is computed in double whatever the states' dtype; the complex64 kernels
convert the angle once (to fixed-point turns or float cos/sin), as they do for host angles.

A table with slot functions (amplitude encodings) has no code here (:func:`angle_code` returns
None): its angles are evaluated on the host, and the kernels take them as a (B, K) array.

Shapes: K slots, P parameters, J differentiated columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._compile import AngleTable


@dataclass(frozen=True)
class AngleCode:
    """C for the angle table of a program.

    Attributes:
        angles: per slot, a C double expression of the parameter variables ``p{j}``.
        derivatives: per slot, column j -> the C double expression of d angle / d p{j}.
        uses: per slot, the columns its angle or derivatives read.
    """

    angles: tuple[str, ...]
    derivatives: tuple[dict[int, str], ...]
    uses: tuple[tuple[int, ...], ...]

    def columns_of(self, slot: int) -> tuple[int, ...]:
        """The columns slot ``slot``'s angle depends on."""
        return tuple(sorted(self.derivatives[slot]))


def _printer() -> Any:
    from sympy.printing.c import C99CodePrinter  # noqa: PLC0415 - only when generating code

    class _DoublePrinter(C99CodePrinter):
        """sympy's C99 printer with double literals and no macros."""

        def _print_Pi(self, expr: Any) -> str:
            return "3.141592653589793"

        def _print_Exp1(self, expr: Any) -> str:
            return "2.718281828459045"

        def _print_Float(self, expr: Any) -> str:
            return _double(float(expr))

        def _print_Integer(self, expr: Any) -> str:
            return _double(float(int(expr)))

        def _print_Rational(self, expr: Any) -> str:
            return f"({_double(float(expr.p))} / {_double(float(expr.q))})"

        def _print_DiracDelta(self, expr: Any) -> str:
            # from differentiating sign/Heaviside: zero wherever the function is defined
            return "0.0"

    return _DoublePrinter({"strict": True})


def _double(value: float) -> str:
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        raise ValueError(f"an angle expression has the constant {text}")
    return text if ("." in text or "e" in text) else f"{text}.0"


def angle_code(table: AngleTable) -> AngleCode | None:
    """The C of ``table``'s slots, or None when some slot is not printable as C (a slot
    function's output, or a function sympy cannot print): then the angles stay on the host.

    Args:
        table: the program's angle table.
    """
    expressions = table.symbolic()
    if expressions is None:
        return None
    printer = _printer()
    angles, derivatives, uses = [], [], []
    try:
        for slot in expressions:
            angles.append(printer.doprint(slot.value))
            derivatives.append({j: printer.doprint(g) for j, g in slot.derivatives.items()})
            symbols = set(slot.value.free_symbols)
            for g in slot.derivatives.values():
                symbols |= set(g.free_symbols)
            uses.append(tuple(sorted(int(s.name[1:]) for s in symbols)))
    except (ValueError, TypeError, NotImplementedError):
        # PrintMethodNotImplementedError is a NotImplementedError: a function with no C form
        return None
    return AngleCode(tuple(angles), tuple(derivatives), tuple(uses))
