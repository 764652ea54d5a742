"""gpuqnn's benchmarks: the CPU table (``bench_qnn.py``), the GPU table (``bench_gpu.py``) and the
modules they share (workloads, runners and peers, measuring, reporting)."""
