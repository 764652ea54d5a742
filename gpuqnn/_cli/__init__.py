"""The ``gpuqnn`` command line: the main job (tutorial networks against qiskit-machine-learning,
a training demo) and its progress bars. Not part of the library's API."""
