"""The ``gpuqnn`` command line: the main job (tutorial networks against qiskit-machine-learning,
a training demo). Not part of the library's API."""
