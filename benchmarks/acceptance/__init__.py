"""The GPU acceptance run's parts (``benchmarks/gpu_acceptance.py`` is the script): the stage
runner (deadline, JSON report, failure capture), the plan (sizes per mode) and the stages."""
