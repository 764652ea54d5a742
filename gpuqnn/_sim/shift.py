"""Parameter shift, batched: the base rows and every shifted copy of a chunk of samples are ONE
pass of the runner.

Rows ``[0:nb]`` are the samples' unshifted base rows, then one block of ``nb`` rows per (slot,
shift term). On the block engine a shifted block starts as a copy of the base rows just after
the block that holds its slot, with the shift applied in that block's output frame, so the common
prefix is simulated once per sample and every row uses its sample's per-sample data. The CUDA
kernels take the same plan as tables (``shift_slot``, ``shift_value``). The strategy's cost grows
with the number of differentiated slots; it is the method when shots are sampled.

Shapes: B samples, nb samples of a chunk, O outputs, K angle slots, S differentiated slots,
T shifted row blocks, J differentiated parameter columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .block_circuit import BlockCircuit
from .executor import ChunkExecutor
from .parameters import AngleMap
from .protocols import Runner
from .shift_plan import Rule, ShiftPlan
from .sinks import Sink


def plan_shifts(circuit: BlockCircuit, slots: Sequence[int], rules: Sequence[Rule]) -> ShiftPlan:
    """The rows of a pass over ``slots`` with their ``rules``: after the base rows, the branches
    of each block in the order the block applies them."""
    by_block: dict[int, list[tuple[int, float, float]]] = {}  # block -> (s, coeff, shift)
    for s, (k, rule) in enumerate(zip(slots, rules, strict=True)):
        for coeff, shift in rule:
            by_block.setdefault(int(circuit.slot_block[k]), []).append((s, coeff, shift))
    branches, terms = {}, []
    for j in sorted(by_block):
        block_terms = by_block[j]
        entries = [(int(circuit.slot_local[slots[s]]), shift) for s, _c, shift in block_terms]
        branches[j] = circuit.blocks[j].plan_shifts(entries)
        terms += [block_terms[e] for e in branches[j].order]
    weights = np.zeros((len(terms), len(slots)))
    for row, (s, coeff, _shift) in enumerate(terms):
        weights[row, s] = coeff
    return ShiftPlan(
        slots=list(slots),
        branches=branches,
        shift_slot=np.array([-1] + [slots[s] for s, _c, _v in terms], dtype=np.int32),
        shift_value=np.array([0.0] + [shift for _s, _c, shift in terms]),
        weights=circuit.backend.asarray(weights),
    )


def slot_groups(rules: Sequence[Rule], budget: int) -> list[list[tuple[int, Rule]]]:
    """Split the (slot, shift term) rows of one sample into groups that fit ``budget`` rows
    with the base row: each group is a list of (slot position, its terms in this group).

    Raises:
        ValueError: not even a base row and one shifted row fit.
    """
    if budget < 2:
        raise ValueError(
            "max_memory is too small for a parameter-shift step: it needs 2 statevector rows "
            f"(a base row and a shifted one) and fits {budget}"
        )
    groups: list[list[tuple[int, Rule]]] = [[]]
    rows = 1
    for g, rule in enumerate(rules):
        terms = list(rule)
        while terms:
            if rows == budget:
                groups.append([])
                rows = 1
            take = terms[: budget - rows]
            terms = terms[len(take) :]
            groups[-1].append((g, tuple(take)))
            rows += len(take)
    return groups


class ParameterShiftStrategy:
    """Parameter shift on a runner (the block engine, or the CUDA kernels on a GPU).

    Args:
        circuit: the fused program (its blocks plan the branches).
        runner: executes the shifted passes.
        executor: sizes and runs the chunks.
        angle_map: the program's angles and their Jacobian.
        rules: (K,) each slot's shift rule.
    """

    name = "parameter_shift"

    def __init__(
        self,
        circuit: BlockCircuit,
        runner: Runner,
        executor: ChunkExecutor,
        angle_map: AngleMap,
        rules: Sequence[Rule],
    ) -> None:
        self.circuit = circuit
        self.runner = runner
        self.executor = executor
        self.angle_map = angle_map
        self.rules = list(rules)

    def fits(self, slots: Sequence[int], columns: Sequence[int], vjp: bool = False) -> bool:
        """Always: a pass by any slots splits into groups of shifted rows that fit."""
        return True

    def cost(self, slots: Sequence[int], vjp: bool = False) -> float:
        """Relative cost per sample on the runner: every block sweeps the base row and the
        shifted rows branched off before it (a product costs what every output costs)."""
        rows = np.ones(len(self.circuit.blocks))
        for k in slots:
            rows[int(self.circuit.slot_block[k]) + 1 :] += len(self.rules[k])
        return self.runner.cost(rows, 1 + sum(len(self.rules[k]) for k in slots))

    def run(
        self,
        params: Any,
        slots: Sequence[int],
        columns: Sequence[int],
        grad: Sink,
        sample: Callable[[Any], Any] | None = None,
        cotangent: Any = None,
    ) -> None:
        """Add the (B, O, J) derivatives of (B, P) ``params`` by ``columns`` into ``grad``,
        chunk by chunk.

        Args:
            sample: optional map of (R, O) exact outputs on the backend to sampled ones (shots);
                chunks then run in turn, so that shots draw in a fixed order.
            cotangent: optional (B, O) real ``g`` on the backend: then ``grad`` is (B, 1, J)
                and gets ``sum_o g[b, o] d out_o``, contracted chunk by chunk.
        """
        executor = self.executor
        batch = params.shape[0]
        rules = [self.rules[k] for k in slots]
        row = self.runner.row_bytes()
        fixed = self.runner.sample_bytes() + self.angle_map.host_bytes(slots, columns)
        for group in slot_groups(rules, (executor.budget() - fixed) // row):
            group_slots = [slots[g] for g, _terms in group]
            plan = plan_shifts(self.circuit, group_slots, [terms for _g, terms in group])
            sizing = executor.sizing(
                plan.rows_per_sample * row + fixed,
                "a parameter-shift step over one sample",
                batch,
                states=plan.rows_per_sample,
            )
            if sample is not None:
                sizing = sizing._replace(workers=1)

            def task(start: int, stop: int, plan: ShiftPlan = plan) -> None:
                chunk = params[start:stop]
                dslot = self._slot_derivatives(self.angle_map.angles(chunk), plan, sample)
                if cotangent is not None:  # (nb, O, S) -> (nb, 1, S)
                    dslot = cotangent[start:stop, None, :] @ dslot
                grad.add(start, stop, dslot @ self.angle_map.jacobian(chunk, plan.slots, columns))

            executor.run(task, batch, sizing)

    def _slot_derivatives(
        self, angles: Any, plan: ShiftPlan, sample: Callable[[Any], Any] | None
    ) -> Any:
        """(nb, O, S) slot derivatives on the backend for the nb samples of ``angles``."""
        nb = angles.shape[0]
        terms = plan.weights.shape[0]
        out = self.runner.shifted(angles, plan, self.executor.buffers())
        if sample is not None:
            out = sample(out)
        # dslot[b, o, s] = sum over the rows of slot s of coeff * out[row block, b, o]
        blocks_out = out[nb:].reshape(terms, nb, out.shape[1])
        return self.executor.backend.xp.einsum("tbo,ts->bos", blocks_out, plan.weights)
