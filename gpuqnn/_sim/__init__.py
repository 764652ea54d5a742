"""The batched statevector simulator: fused blocks, gradient strategies, runners, readouts."""
