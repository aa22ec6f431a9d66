"""Probes: each fills its part of a `Facts` in place and never raises (a failure is recorded with its reason).

- `system`: platform (Linux/Windows/WSL2/container/macOS, PCI devices, WSL libcuda, long paths, symlinks, shell),
  environment variables that matter, the Hugging Face cache and its disk.
- `nvidia`: NVML in-process with each failure class named, then `nvidia-smi`.
- `toolkit`: `nvcc`, CUDA_HOME/CUDA_PATH, libcudart.
- `pyenv`: the target Python's packages, then torch and bitsandbytes, in child processes of that interpreter
  (scripts in `doctor/child/`, run by path so the target needs no tunedoc).
- `proc`: the subprocess runner (argument lists, timeouts, process-tree kill, cancel).

Run them through `doctor.run` (concurrently, with progress callbacks).
"""
