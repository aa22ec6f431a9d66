"""Activation offloading: the tensors autograd saves for backward wait in (pinned) CPU memory.

`grad_ckpt = "offload"`. With gradient checkpointing, what a step keeps between forward and backward is mostly
each decoder layer's input (saved by torch.utils.checkpoint's non-reentrant frame through save_for_backward) and
the loss's gradient of the hidden states. `OffloadActivations` is a `torch.autograd.graph.saved_tensors_hooks`
context (as torchtune's `OffloadActivations`): pack copies each large saved activation to CPU memory and lets the
GPU copy go; unpack copies it back when backward reaches it. Parameters (frozen weights that matmuls save) and
small tensors stay where they are.

Cost: every offloaded byte crosses PCIe twice. The copies are issued on the compute stream with non_blocking from
pinned memory, so they overlap with the CPU but not with kernels: about 10-20 % slower steps on PCIe 4, and CPU
RAM for layers x tokens x hidden x 2 bytes. On a CPU there is nowhere to offload to: the recipe then runs plain
checkpointing and says so (the hooks still work on CPU tensors with `device="cpu"`, which tests use).
"""

from __future__ import annotations

MIN_BYTES = 1 << 20  # smaller saved tensors are not worth a copy


class OffloadActivations:
    """Context manager: saved tensors on `device` of at least `min_bytes` go to CPU memory until backward.

    `device`: the device whose tensors are offloaded ("cuda" in training; "cpu" copies CPU tensors, for tests).
    `stats` counts what moved: {"packed": n, "bytes": b, "unpacked": n}.
    """

    def __init__(self, device: str = "cuda", min_bytes: int = MIN_BYTES, pin: bool | None = None):
        import torch

        self.device_type = str(device).split(":")[0]
        self.min_bytes = min_bytes
        self.pin = (self.device_type == "cuda" and torch.cuda.is_available()) if pin is None else pin
        self.stats = {"packed": 0, "bytes": 0, "unpacked": 0}
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t):
        import torch

        nbytes = t.numel() * t.element_size()
        if (t.device.type != self.device_type or nbytes < self.min_bytes or isinstance(t, torch.nn.Parameter)
                or t.is_sparse or type(t) is not torch.Tensor):  # quantized-weight subclasses stay put
            return ("keep", t)
        host = torch.empty(t.size(), dtype=t.dtype, layout=t.layout, pin_memory=self.pin, device="cpu") \
            if t.is_contiguous() else torch.empty_strided(t.size(), t.stride(), dtype=t.dtype,
                                                         pin_memory=self.pin, device="cpu")
        host.copy_(t, non_blocking=self.pin)
        self.stats["packed"] += 1
        self.stats["bytes"] += nbytes
        return ("host", host, t.device)

    def _unpack(self, packed):
        if packed[0] == "keep":
            return packed[1]
        _, host, device = packed
        self.stats["unpacked"] += 1
        if device.type == "cpu":
            return host
        return host.to(device, non_blocking=self.pin)

    def __enter__(self):
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def context(mode: str, device: str):
    """(context manager for a training forward, a note for the user or None) for grad_ckpt=`mode` on `device`."""
    import contextlib

    if mode != "offload":
        return contextlib.nullcontext(), None
    if not str(device).startswith("cuda"):
        return contextlib.nullcontext(), ("grad_ckpt=offload on the CPU: activations already live in CPU memory, "
                                          "so there is nowhere to offload to; running as grad_ckpt=on")
    return OffloadActivations(device), None
