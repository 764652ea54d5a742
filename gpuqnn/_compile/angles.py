"""The angle table: how each angle slot of a program depends on the network's parameters.

Every occurrence of a parameter in a gate is one *slot* k. Its angle is a qiskit
``ParameterExpression`` of the inputs and weights (or a number). The table evaluates all slots for
a whole batch at once, and their derivatives for the chain rule. Affine slots (the common case:
``x``, ``2*x``, ``x + w``, ``-x/2 + 0.3``) take a matrix product; other expressions (products,
powers, sin/cos, ...) are compiled once per array module (NumPy, or CuPy so that device inputs
stay on the device) to vectorised functions with sympy. A slot may also be one output of a
:class:`SlotFunction`: a vector function of inner expressions (an amplitude encoding's rotation
angles as functions of its amplitudes), evaluated once per call for all its slots and
differentiated by the chain rule through the inner expressions' own table.

Shapes: B batch, K slots, P parameters, S selected slots, J selected parameters, m a slot
function's inner expressions, F its outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple, Protocol

import numpy as np
from qiskit.circuit import Parameter, ParameterExpression

from .. import _profile


@dataclass
class _NonAffineSlot:
    """A slot whose angle is not affine: its sympy expression and derivatives, compiled to
    vectorised functions per array module on first use."""

    slot: int
    columns: list[int]
    args: list[Any]
    value: Any
    derivatives: dict[int, Any]
    compiled: dict[str, tuple[Callable[..., Any], dict[int, Callable[..., Any]]]] = field(
        default_factory=dict
    )
    calls: dict[int, int] = field(default_factory=dict)  # array calls per evaluation (profile)

    def array_calls(self, column: int | None = None) -> int:
        """Array-library calls of one evaluation of the value (or of the derivative by
        ``column``): one per operation of the expression, the column slices, the real part
        and the store into the table."""
        key = -1 if column is None else column
        if key not in self.calls:
            import sympy  # noqa: PLC0415 - only when profiling

            expr = self.value if column is None else self.derivatives[column]
            self.calls[key] = int(sympy.count_ops(expr)) + len(self.columns) + 2
        return self.calls[key]

    def functions(self, xp: ModuleType) -> tuple[Callable[..., Any], dict[int, Callable[..., Any]]]:
        """The value and derivative functions for the array module ``xp``."""
        name = xp.__name__
        if name not in self.compiled:
            import sympy  # noqa: PLC0415 - only needed when compiling

            # DiracDelta comes from differentiating sign/Heaviside (``sign(w) * w``); neither
            # NumPy nor CuPy has it, and as a function it is zero wherever it is defined
            modules = [
                {"DiracDelta": lambda x, *_order: xp.zeros_like(xp.asarray(x, dtype=float))},
                "cupy" if name == "cupy" else "numpy",
            ]
            value = sympy.lambdify(self.args, self.value, modules=modules, dummify=True)
            derivs = {
                j: sympy.lambdify(self.args, g, modules=modules, dummify=True)
                for j, g in self.derivatives.items()
            }
            self.compiled[name] = (value, derivs)
        return self.compiled[name]


class SlotFunction(Protocol):
    """A vector function ``f(a)`` of m inner expressions ``a``, whose F outputs are slot angles.

    Attributes:
        inner: the m inner expressions (``ParameterExpression`` or real numbers).
        num_outputs: F.
    """

    inner: tuple[ParameterExpression | float, ...]
    num_outputs: int

    def values(self, inner: Any, xp: ModuleType) -> Any:
        """(B, F) float64 outputs at (B, m) float64 inner values, arrays of ``xp``."""

    def chain(self, inner: Any, inner_jacobian: Any, xp: ModuleType) -> Any:
        """(B, F, J) float64 derivatives of the outputs by J parameters, from (B, m) inner
        values and the (B or 1, m, J) derivatives of the inner expressions."""


class SlotExpression(NamedTuple):
    """A slot's angle as a sympy expression of the symbols ``p{j}`` (parameter column j), and
    its derivative by each column it depends on."""

    value: Any
    derivatives: dict[int, Any]


class FunctionOutput(NamedTuple):
    """A slot angle that is output number ``output`` of ``function``."""

    function: SlotFunction
    output: int


@dataclass
class _FunctionSlots:
    """The slots of one slot function: its inner table and which output each slot is."""

    function: SlotFunction
    inner: AngleTable
    slots: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


class AngleTable:
    """Evaluates the angles of all slots, and their derivatives, for a batch of parameters.

    Args:
        expressions: One entry per slot: a ``ParameterExpression`` or a real number.
        parameters: The network's parameters in column order (inputs, then weights).
    """

    def __init__(
        self,
        expressions: Sequence[ParameterExpression | float | FunctionOutput],
        parameters: Sequence[Parameter],
    ) -> None:
        self.expressions = tuple(expressions)
        """The slots' expressions, as given (a density program's table extends them)."""
        self.parameters = tuple(parameters)
        """The parameters in column order."""
        self.num_slots = len(expressions)
        self.num_parameters = len(parameters)
        column = {param: j for j, param in enumerate(parameters)}
        self.offset = np.zeros(self.num_slots)
        self.coeff = np.zeros((self.num_slots, self.num_parameters))
        self.depends = np.zeros((self.num_slots, self.num_parameters), dtype=bool)
        self._nonaffine: list[_NonAffineSlot] = []
        self._functions: dict[int, _FunctionSlots] = {}
        for k, expr in enumerate(expressions):
            if isinstance(expr, FunctionOutput):
                self._add_function_slot(k, expr, parameters)
                continue
            if not isinstance(expr, ParameterExpression) or not expr.parameters:
                self.offset[k] = _real(expr)
                continue
            self._add_slot(k, expr, sorted(column[p] for p in expr.parameters), parameters)

    def _add_slot(
        self, k: int, expr: ParameterExpression, cols: list[int], parameters: Sequence[Parameter]
    ) -> None:
        import sympy  # noqa: PLC0415 - only needed at compile time

        sym = expr.sympify()
        # parameters take real values: with real symbols, abs() and conjugate() of them have
        # derivatives sympy can write down (sign(x), 1) instead of unprintable Derivative(re(x))
        real = {s: sympy.Symbol(s.name, real=True) for s in sym.free_symbols}
        sym = sym.xreplace(real)
        symbols = {s.name: s for s in sym.free_symbols}
        # qiskit keeps parameters that cancel (x - x, from some gate definitions); sympy drops
        # them: their derivative is zero and the slot does not depend on them
        cols = [j for j in cols if parameters[j].name in symbols]
        if not cols:
            self.offset[k] = _real(complex(sym))
            return
        self.depends[k, cols] = True
        args = [symbols[parameters[j].name] for j in cols]
        grads = {j: sympy.diff(sym, s) for j, s in zip(cols, args, strict=True)}
        if all(not g.free_symbols for g in grads.values()):
            self.offset[k] = _real(complex(sym.subs({s: 0 for s in args})))
            for j, g in grads.items():
                self.coeff[k, j] = _real(complex(g))
            return
        item = _NonAffineSlot(k, cols, args, sym, grads)
        item.functions(np)  # compile now; other array modules on first use
        self._nonaffine.append(item)

    def _add_function_slot(
        self, k: int, output: FunctionOutput, parameters: Sequence[Parameter]
    ) -> None:
        group = self._functions.get(id(output.function))
        if group is None:
            inner = AngleTable(output.function.inner, parameters)
            group = self._functions[id(output.function)] = _FunctionSlots(output.function, inner)
        group.slots.append(k)
        group.outputs.append(output.output)
        self.depends[k] = group.inner.depends.any(axis=0)

    def is_affine_in(self, slots: Sequence[int]) -> bool:
        """Whether every one of ``slots`` is an affine function of the parameters (then its
        Jacobian is the same for every sample)."""
        chosen = set(int(k) for k in slots)
        functional = {k for group in self._functions.values() for k in group.slots}
        return not chosen & functional and not any(item.slot in chosen for item in self._nonaffine)

    def angles(self, params: Any, xp: ModuleType = np) -> Any:
        """Angles of every slot.

        Args:
            params: (B, P) float64 parameter values, an array of ``xp``.
            xp: the array module of ``params`` and of the result.

        Returns:
            (B, K) float64 angles.
        """
        if _profile.counting():  # the product, the sum and their tables' copies
            _profile.count("host_ops", 4 + sum(item.array_calls() for item in self._nonaffine))
        out = params @ xp.asarray(self.coeff.T)
        out += xp.asarray(self.offset)
        for item in self._nonaffine:
            value, _derivs = item.functions(xp)
            cols = [params[:, j] for j in item.columns]
            out[:, item.slot] = xp.real(value(*cols))
        for group in self._functions.values():
            values = group.function.values(group.inner.angles(params, xp), xp)
            out[:, group.slots] = values[:, group.outputs]
        _check_finite(out, xp)
        return out

    def jacobian(
        self, params: Any, slots: Sequence[int], columns: Sequence[int], xp: ModuleType = np
    ) -> Any:
        """Derivatives of selected slots' angles with respect to selected parameters.

        Args:
            params: (B, P) float64 parameter values, an array of ``xp``.
            slots: the S slot indices.
            columns: the J parameter columns.
            xp: the array module of ``params`` and of the result.

        Returns:
            (B, S, J) float64, or (1, S, J) when every selected slot is affine.
        """
        slots = list(slots)
        columns = list(columns)
        jac = xp.asarray(self.coeff[np.ix_(slots, columns)][None])
        position = {k: s for s, k in enumerate(slots)}
        where = {j: c for c, j in enumerate(columns)}
        chosen = [item for item in self._nonaffine if item.slot in position]
        groups = [g for g in self._functions.values() if any(k in position for k in g.slots)]
        if not chosen and not groups:
            return jac
        jac = xp.repeat(jac, params.shape[0], axis=0)
        if _profile.counting():  # the table's copy, its repetition, each derivative
            calls = sum(
                item.array_calls(j) for item in chosen for j in item.derivatives if j in where
            )
            _profile.count("host_ops", 2 + calls)
        for group in groups:
            inner = group.inner.angles(params, xp)
            inner_jacobian = group.inner.jacobian(params, range(group.inner.num_slots), columns, xp)
            derivatives = group.function.chain(inner, inner_jacobian, xp)
            for k, f in zip(group.slots, group.outputs, strict=True):
                if k in position:
                    jac[:, position[k], :] = derivatives[:, f, :]
        for item in chosen:
            _value, derivs = item.functions(xp)
            cols = [params[:, j] for j in item.columns]
            for j, deriv in derivs.items():
                if j in where:
                    jac[:, position[item.slot], where[j]] = xp.real(deriv(*cols))
        return jac

    def symbolic(self) -> list[SlotExpression] | None:
        """Every slot's angle and its derivatives as sympy expressions of the real symbols
        ``p0, p1, ...`` (``p{j}``: parameter column j), for code that evaluates them elsewhere
        (the CUDA kernels); None when a slot is an output of a :class:`SlotFunction` (those
        are evaluated by :meth:`angles` only)."""
        if self._functions:
            return None
        import sympy  # noqa: PLC0415 - only needed when generating code

        def symbol(j: int) -> Any:
            return sympy.Symbol(f"p{j}", real=True)

        out = []
        for k in range(self.num_slots):
            cols = [int(j) for j in np.flatnonzero(self.depends[k])]
            value = sympy.Float(self.offset[k]) + sum(
                (sympy.Float(self.coeff[k, j]) * symbol(j) for j in cols), sympy.Integer(0)
            )
            derivatives = {j: sympy.Float(self.coeff[k, j]) for j in cols}
            out.append(SlotExpression(value, derivatives))
        for item in self._nonaffine:
            rename = {a: symbol(j) for a, j in zip(item.args, item.columns, strict=True)}
            out[item.slot] = SlotExpression(
                item.value.xreplace(rename),
                {j: g.xreplace(rename) for j, g in item.derivatives.items()},
            )
        return out

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("AngleTable is rebuilt from the circuit; it is not pickled")


def _check_finite(angles: Any, xp: ModuleType) -> None:
    """Refuse angles that overflowed float64 (finite inputs, e.g. ``2 (pi - x)(pi - y)`` from
    ``x, y >= 1e154``): ``exp(i inf)`` has no value, and qiskit refuses to bind them too."""
    if not bool(xp.isfinite(angles).all()):
        raise ValueError(
            "input_data or weights give a gate angle that overflows float64 (inf or NaN; e.g. "
            "zz_feature_map's 2(pi - x)(pi - y) for inputs from about 1e154): scale "
            "input_data (and weights) down"
        )


def _real(value: complex | float | ParameterExpression) -> float:
    if isinstance(value, ParameterExpression):
        value = complex(value)
    value = complex(value)
    if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
        raise ValueError(f"gate angle {value} is not real")
    return float(value.real)
