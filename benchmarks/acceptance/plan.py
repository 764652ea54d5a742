"""What the acceptance run does at each size: the GPU run, its ``--quick`` form, and the CPU dry
run (``--device cpu``, with and without ``--quick``), sized to fit their time."""

from __future__ import annotations

from dataclasses import dataclass

KernelCases = tuple[tuple[int, str] | tuple[int, str, int], ...]
"""(qubits, readout) or (qubits, readout, seed); readouts as
``tests/test_cuda_kernels.make_readout`` names them: ``pauli`` (3 multi-term observables),
``direct`` (one output per basis state), ``pieces`` (a partial measurement through an
interpret). A seed is given where the default one's outputs hardly depend on the angles (the
check would be vacuous); every case's reference has values of at least 1e-3."""


@dataclass(frozen=True)
class Plan:
    """Sizes and time estimates of one acceptance run.

    Attributes:
        device: ``"cuda"`` or ``"cpu"`` (the dry run).
        quick: the ``--quick`` form.
        compile_qubits: workloads (``zz_estimator(n)``) whose kernels are generated.
        compile_kinds: per qubit count, the kernels compiled (``forward``,
            ``adjoint-jacobian``, ``adjoint-vjp``); the others are generated only.
        fused_forward: the fused forward kernel's cases.
        fused_adjoint: the fused adjoint kernel's cases (Jacobian and VJP each).
        per_op: the per-op runner's cases.
        kernel_samples: samples per kernel case.
        timing_batches: (qubits, batch) of the timed workloads.
        timing_repeat: gpuqnn's passes: best of this many after a warm-up.
        peer_ref_batch: per qubit count, samples the scaled peers are measured on.
        estimates: seconds each stage is expected to take, by stage name.
    """

    device: str
    quick: bool
    compile_qubits: tuple[int, ...]
    compile_kinds: dict[int, tuple[str, ...]]
    fused_forward: KernelCases
    fused_adjoint: KernelCases
    per_op: KernelCases
    kernel_samples: int
    timing_batches: tuple[tuple[int, int], ...]
    timing_repeat: int
    peer_ref_batch: dict[int, int]
    estimates: dict[str, float]

    @property
    def dry_run(self) -> bool:
        """Whether this is the CPU dry run (no GPU figures)."""
        return self.device == "cpu"


ALL_KERNELS = ("forward", "adjoint-jacobian", "adjoint-vjp")


def make_view(device: str, quick: bool) -> Plan:
    """The plan of a run on ``device`` (``"cuda"`` or ``"cpu"``)."""
    if device == "cuda":
        return _gpu_quick() if quick else _gpu()
    return _dry_run(quick)


def _gpu() -> Plan:
    return Plan(
        device="cuda",
        quick=False,
        compile_qubits=(8, 12),
        compile_kinds={8: ALL_KERNELS, 12: ALL_KERNELS},
        fused_forward=(
            (1, "pauli"),
            (4, "direct"),
            (7, "pieces"),
            (10, "pauli"),
            (12, "pieces"),
            (13, "direct"),
            (14, "pieces"),
        ),
        fused_adjoint=(
            (2, "pauli"),
            (5, "direct"),
            (8, "pieces"),
            (11, "pauli"),
            (13, "pieces", 4),
        ),
        per_op=((3, "direct"), (8, "pieces"), (12, "direct"), (16, "pieces"), (18, "pieces")),
        kernel_samples=5,
        timing_batches=((8, 4096), (12, 1024)),
        timing_repeat=10,
        peer_ref_batch={8: 512, 12: 64},
        estimates={
            "environment": 10,
            "compile": 60,
            "kernels": 90,
            "networks": 40,
            "pytest": 60,
            "timings": 100,
            "sanitizer": 60,
        },
    )


def _gpu_quick() -> Plan:
    return Plan(
        device="cuda",
        quick=True,
        compile_qubits=(8, 12),
        compile_kinds={8: ALL_KERNELS},
        fused_forward=((3, "pauli"), (8, "pieces"), (13, "direct")),
        fused_adjoint=((4, "pauli"), (10, "pieces")),
        per_op=((6, "direct"), (16, "pieces")),
        kernel_samples=3,
        timing_batches=((8, 4096), (12, 1024)),
        timing_repeat=5,
        peer_ref_batch={8: 64, 12: 8},
        estimates={
            "environment": 10,
            "compile": 30,
            "kernels": 40,
            "networks": 30,
            "pytest": 60,
            "timings": 60,
            "sanitizer": 60,
        },
    )


def _dry_run(quick: bool) -> Plan:
    """Small enough for about a minute on two slow cores: the host build of the kernels runs
    each block's emulated threads one after the other."""
    return Plan(
        device="cpu",
        quick=quick,
        compile_qubits=(8, 12),
        compile_kinds={8: ("forward",)},
        fused_forward=((3, "pauli"),) if quick else ((1, "pauli"), (3, "direct"), (6, "pieces")),
        fused_adjoint=((4, "pieces"),) if quick else ((3, "pauli"), (6, "pieces")),
        per_op=((6, "direct"),) if quick else ((2, "direct"), (5, "pieces"), (8, "pauli")),
        kernel_samples=2,
        timing_batches=((8, 16), (12, 4)),
        timing_repeat=2,
        peer_ref_batch={8: 2, 12: 1},
        estimates={
            "environment": 5,
            "compile": 15,
            "kernels": 30,
            "networks": 15,
            "pytest": 0,
            "timings": 10,
            "sanitizer": 0,
        },
    )
