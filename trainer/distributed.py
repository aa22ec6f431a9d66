"""Several processes, one run: data-parallel (or sharded) training through torch.distributed, launched by
torchrun.

tunedoc never builds a process group of its own: the launcher is torchrun (`torch.distributed.run`, run by
`trainer/multi.py` as the run's process), the engine is torch's DistributedDataParallel. This module is what the
recipe needs from them, and nothing when the run has one process:

- `Dist.from_env()` reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK and joins the group (gloo on the CPU and on
  Windows, NCCL on Linux GPUs), with a timeout on every collective so no rank is left hanging for ever.
- rank 0 alone writes events, status.json and checkpoints (`is_main`); the others compute.
- `agree()` makes every rank act on the same control request (rank 0 reads the control files) and stop together
  when any of them got a signal.
- `wrap()` puts the loss computation inside DDP (or FSDP2, `--strategy fsdp`, trainer/fsdp.py): the engine's
  forward must run for its gradient all-reduce (or its parameter all-gather) to be set up, so the module it wraps
  computes the loss, whatever loss implementation the recipe uses.

Data: the global batch of step s is stream positions [s*G, (s+1)*G) with G = micro_batch x grad_accum x world; rank
r takes the r-th slice of B = micro_batch x grad_accum rows. The step number alone still fixes every rank's rows, so
a resumed run (after a kill -9 of any rank) sees the rows an uninterrupted one would, and a 2-rank run sees the same
global batches as a 1-rank run with twice the grad_accum.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

COLLECTIVE_TIMEOUT_S = int(os.environ.get("TUNEDOC_DIST_TIMEOUT_S", "600"))  # a rank that vanished ends the run


def error_file(run_dir: Path, rank: int) -> Path:
    """Where a rank other than 0 leaves its error (only rank 0 writes events); the launcher turns it into the
    run's `error` event."""
    return Path(run_dir) / f"rank-{rank}.error.json"


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return cls(rank=int(os.environ.get("RANK", "0") or 0), world=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0") or 0))

    # ---------------------------------------------------------------------------------------------------------
    def init(self, device_type: str) -> str:
        """Join the process group; returns the backend. One process: nothing to do."""
        if not self.enabled:
            return "none"
        import torch
        import torch.distributed as dist

        backend = "nccl" if device_type == "cuda" and os.name != "nt" and dist.is_nccl_available() else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        return backend

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, value: float) -> float:
        """The sum of `value` over all ranks (a plain number in, a plain number out)."""
        if not self.enabled:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order (a picklable object)."""
        if not self.enabled:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def agree(self, actions: list[str], signalled: bool) -> tuple[list[str], bool]:
        """Rank 0's control actions, and whether any rank was signalled, known to every rank."""
        if not self.enabled:
            return actions, signalled
        import torch.distributed as dist

        box = [actions if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return list(box[0] or []), self.all_sum(1.0 if signalled else 0.0) > 0

    def _device(self):
        import torch
        import torch.distributed as dist

        return f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else torch.device("cpu")

    # ---------------------------------------------------------------------------------------------------------
    def wrap(self, model, loss_fn: Callable[[dict], Any], strategy: str = "ddp", fsdp_plan=None):
        """A module whose forward is `loss_fn(batch)`, holding `model`, under the strategy's engine:

        - ddp: DistributedDataParallel. Frozen parameters (the quantized base weights) are neither broadcast nor
          bucketed: only the LoRA gradients travel.
        - fsdp: FSDP2's fully_shard per decoder layer and on this module as the root (trainer/fsdp.py): the root's
          forward is where FSDP gathers the embeddings and lm_head, which the chunked loss uses outside the model's
          own forward."""
        import torch

        class LossModule(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, batch):
                return loss_fn(batch)

        module = LossModule()
        if strategy == "fsdp":
            from tunedoc.trainer import fsdp

            return fsdp.shard(module, model, fsdp_plan)
        from torch.nn.parallel import DistributedDataParallel as DDP

        frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
        frozen += [n for n, _ in module.named_buffers()]
        DDP._set_params_and_buffers_to_ignore_for_model(module, frozen)
        ids = [self.local_rank] if next(model.parameters()).device.type == "cuda" else None
        return DDP(module, device_ids=ids, broadcast_buffers=False, find_unused_parameters=False)

    def no_sync(self, wrapped, last: bool):
        """Accumulating micro-batches under DDP: all-reduce only on the last one. FSDP reduce-scatters every
        micro-batch (trainer/fsdp.py says why)."""
        if wrapped is None or last or not hasattr(wrapped, "no_sync"):
            return contextlib.nullcontext()
        return wrapped.no_sync()

    def record_error(self, run_dir: Path, message: str, id: str, hint: str | None) -> None:
        if not self.is_main:
            error_file(run_dir, self.rank).write_text(
                json.dumps({"rank": self.rank, "message": message, "id": id, "hint": hint}), encoding="utf-8")


def shard(rows: list, rank: int, world: int) -> list:
    """Rank `rank`'s contiguous slice of a global batch's rows (every slice the same size)."""
    per = len(rows) // world
    return rows[rank * per:(rank + 1) * per]


# ------------------------------------------------------------------------------------------------------------ launch
# Consumer GeForce cards of these generations have no peer-to-peer access between them: NCCL's P2P transport then
# hangs or fails on some drivers (NVIDIA disabled P2P on GeForce RTX 40 and 50 series).
NO_P2P_PREFIXES = ("NVIDIA GeForce RTX 40", "NVIDIA GeForce RTX 50", "GeForce RTX 40", "GeForce RTX 50")


def parse_gpus(spec: str | None, visible: int) -> list[int]:
    """`--gpus all|N|0,2` -> the GPU indices (nvidia-smi's numbering). ValueError names what is wrong."""
    if spec in (None, "", "all"):
        return list(range(visible))
    spec = spec.strip()
    if spec.isdigit() and "," not in spec:
        n = int(spec)
        if n < 1 or n > visible:
            raise ValueError(f"--gpus {n}: this machine has {visible} GPU{'s' if visible != 1 else ''}")
        return list(range(n))
    try:
        ids = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--gpus {spec!r}: use all, a count (2) or indices as nvidia-smi shows them (0,2)") from None
    bad = [i for i in ids if i < 0 or i >= visible]
    if bad or len(set(ids)) != len(ids) or not ids:
        raise ValueError(f"--gpus {spec!r}: GPUs are numbered 0..{visible - 1} here (nvidia-smi's order), "
                         "each listed once")
    return ids


def launch_env(gpus: list[int] | None, gpu_names: list[str], windows: bool) -> tuple[dict[str, str], list[str]]:
    """Environment for the run's processes, and the lines that say why each variable is set."""
    env, notes = {}, []
    if gpus is not None:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's numbering = nvidia-smi's, so --gpus 1 is the card shown as 1
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        names = [gpu_names[i] for i in gpus if i < len(gpu_names)]
        if len(gpus) > 1 and any(n.startswith(NO_P2P_PREFIXES) for n in names):
            env["NCCL_P2P_DISABLE"] = "1"
            notes.append("NCCL_P2P_DISABLE=1: GeForce RTX 40/50-series cards have no peer-to-peer access; NCCL "
                         "goes through host memory instead of hanging")
    if windows:
        env["USE_LIBUV"] = "0"  # Windows wheels of torch 2.4+ lack libuv, which torchrun's store uses by default
        notes.append("USE_LIBUV=0 and the gloo backend: Windows has no NCCL and its torch builds lack libuv")
    return env, notes


def visible_gpus() -> list[str]:
    """Names of this machine's NVIDIA GPUs in nvidia-smi's (PCI) order, through NVML; [] without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
                    for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return []


def gpu_memory_gib(ids: list[int]) -> list[float]:
    """Total memory (GiB) of the GPUs `ids` (nvidia-smi's numbering), through NVML; [] without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total / 2**30 for i in ids]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library: unknown
        return []
