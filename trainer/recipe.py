"""The QLoRA/LoRA recipe: `python -m tunedoc.trainer.recipe RUN_DIR [--resume]`. Reads top to bottom: setup(), train(),
cleanup().

Built on transformers + peft + bitsandbytes with a plain loop (as nanoGPT and torchtune do): exact resume and
control between steps are simpler to see than through Trainer callbacks.

- setup(): read config.json, validate and tokenize the data (before any model loads), load the model quantized per
  the profile (nf4 / nf4-dq / int8 / none), add LoRA, build optimizer and scheduler, fit memory (the OOM
  step-down in trainer/oom.py), and on --resume restore adapter, optimizer, scheduler, RNG and data position from
  the last checkpoint.
- train(): one optimizer step = grad_accum micro-batches; the loss is the token-weighted mean over all of them.
  Between steps: step event, control files (save/pause/resume/stop), signals, eval, samples, checkpoints.
- final_eval(): when config.json has a `final_eval` entry (the demo writes one), score its held-out examples with the
  model just trained and, with base=true, the same weights with the adapter off (trainer/eval.py): an `eval` event
  (source "final") and RUN/eval/<time>/, after a `phase` event and status.json phase "evaluating".
- cleanup(): save the adapter, write the `done` event and status.json.

Data order: the training rows (packed or not) form a stream, one seeded permutation per epoch, concatenated.
Optimizer step s consumes stream positions [s*B, (s+1)*B) with B = micro_batch x grad_accum, so the step number
alone fixes the data position: a resumed run sees exactly the rows an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import shlex
import shutil
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

from tunedoc.trainer import control, fsdp, oom
from tunedoc.trainer import loss as loss_fn
from tunedoc.trainer.distributed import Dist, shard
from tunedoc.trainer.events import EventWriter, format_event
from tunedoc.trainer.rundir import ADAPTER, CHECKPOINTS, CONFIG, EVENTS, read_json, redact, update_status, write_json

MAX_GRAD_NORM = 1.0  # gradients are clipped to this norm (reported before clipping)
KEEP_CHECKPOINTS = 3  # older checkpoints are deleted once a newer one is complete
OOM_RETRY_STEPS = 3  # an OOM in the first steps of a process steps memory down; later it is an error
SAMPLE_TOKENS = 48


class RunFailed(Exception):
    """A failure with a stable error id and a hint for the user (ends the run with status failed)."""

    def __init__(self, message: str, id: str, hint: str | None = None):
        super().__init__(message)
        self.id, self.hint = id, hint


# ---------------------------------------------------------------------------------------------------------------
# helpers shared with chat/export


def resolve_precision(precision: str, device: str):
    """(torch dtype, warning or None) for the profile's precision on this device."""
    import torch

    if device.startswith("cuda"):
        if precision == "auto":
            return (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16), None
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision], None
    if precision in ("auto", "fp32"):
        return torch.float32, None
    return torch.float32, f"precision={precision} on the CPU: computing in fp32 (16-bit is for GPUs)"


def quantization_config(quant: str, compute_dtype, quant_storage=None):
    """bitsandbytes' config for the profile's quant. `quant_storage`: the dtype 4-bit weights are packed in (fsdp
    needs the compute dtype, trainer/fsdp.py); None keeps bitsandbytes' uint8."""
    from transformers import BitsAndBytesConfig

    if quant in ("nf4", "nf4-dq"):
        extra = {"bnb_4bit_quant_storage": quant_storage} if quant_storage is not None else {}
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype,
                                  bnb_4bit_use_double_quant=(quant == "nf4-dq"), **extra)
    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident memory as the OS counts it (what GNU time reports), so a step's temporaries
    count even when they are freed before the step ends: ru_maxrss (KiB on Linux, bytes on macOS), the peak
    working set on Windows."""
    if sys.platform == "win32":
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    if sys.platform.startswith("linux"):
        # VmHWM is this process's own high-water mark; ru_maxrss carries over the parent's peak through fork and
        # exec (a trainer started by a 1.3 GB process would start at 1.3 GB)
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted(p for p in (run_dir / CHECKPOINTS).glob("step-*") if (p / "trainer_state.pt").is_file())
    return ckpts[-1] if ckpts else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "tunedoc"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# ---------------------------------------------------------------------------------------------------------------


class Recipe:
    def __init__(self, run_dir: str | os.PathLike, resume: bool = False, echo: bool = True):
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.config = read_json(self.run_dir / CONFIG)
        self.dist = Dist.from_env()  # one process, or one rank of a torchrun launch (trainer/distributed.py)
        self.wrapped = None  # the DDP or FSDP module around the loss, when there are several ranks
        self.strategy = "none"  # none (one process) | ddp | fsdp
        self.events = EventWriter(self.run_dir / EVENTS, echo=(lambda e: print(format_event(e), flush=True)) if echo else None) if self.dist.is_main else None
        self.step = 0  # optimizer steps completed
        self._adapter_step: int | None = None  # the step whose adapter RUN/adapter/ holds (save_adapter)
        self.elapsed = 0.0  # training seconds, summed across resumes
        self.last_loss: float | None = None
        self.signal_name: str | None = None
        self.peak_rss = 0

    def emit(self, type: str, **fields):
        if self.events is None:  # ranks other than 0 compute; rank 0 alone writes events
            return None
        return self.events.emit(type, **redact(fields))

    def _status(self, **fields) -> None:
        if self.dist.is_main:
            update_status(self.run_dir, **fields)

    # -----------------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from tunedoc.profiles.profile import Profile
        from tunedoc.trainer import data as D

        if not self.config:
            raise RunFailed(f"{self.run_dir / CONFIG} is missing or unreadable", "crash")
        self.profile = p = Profile.from_dict(self.config["profile"])
        self.device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.backend = self.dist.init(self.device.split(":")[0])
        self.dtype, warn = resolve_precision(p.precision, self.device)
        if warn:
            self.emit("warning", message=warn, id="precision")
        self.strategy = self._strategy()
        self.fsdp_plan = None
        if self.strategy == "fsdp":
            from tunedoc.profiles.archs import load_config

            try:
                self.fsdp_plan = fsdp.plan(p.quant, str(self.dtype).replace("torch.", ""), self.device,
                                           int(load_config(self.config["model"]).get("num_hidden_layers") or 0))
            except fsdp.FsdpUnsupported as e:
                raise RunFailed(str(e), "fsdp-unsupported", "use --strategy ddp") from None
            for note in self.fsdp_plan.notes:
                print(f"fsdp: {note}", flush=True)
        state = None
        ckpt = latest_checkpoint(self.run_dir) if self.resume else None
        if self.resume and ckpt is None:
            self.emit("warning", message="no checkpoint to resume from: starting from step 0", id="no-checkpoint")
        if ckpt is not None:
            state = torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=True)
        # memory settings: the OOM step-down may have changed them; a resume keeps what worked
        eff = self.config.get("effective") or {}
        self.mem = oom.MemorySettings(
            micro_batch=int(eff.get("micro_batch", p.micro_batch)), grad_accum=int(eff.get("grad_accum", p.grad_accum)),
            grad_ckpt=eff.get("grad_ckpt", p.grad_ckpt), cutoff_len=int(eff.get("cutoff_len", p.cutoff_len)),
            loss_impl=eff.get("loss_impl", p.loss_impl),
        )
        self._resolve_loss()  # loss_impl=fused without Liger fails here, before data or model load
        self.seed = p.seed
        random.seed(p.seed)
        torch.manual_seed(p.seed)

        # data, before any model loads: a bad file fails in seconds with every problem listed
        try:
            convs = D.load_conversations(self.config["data"], self.config.get("format", "auto"))
        except D.DataError as e:
            raise RunFailed(str(e), "data", "fix the listed records; `tunedoc data check FILE` re-checks") from None
        if not convs:
            raise RunFailed(f"{self.config['data']} has no conversations", "data")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.config["model"])
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._check_template()
        self.eval_convs, self.train_convs = D.split_held_out(convs, p.eval_split, p.seed)
        self._build_rows()

        # model: quantized base + LoRA. transformers' own "Loading weights" bar is turned off: in trainer.log it
        # is one line per tick; two plain lines say the same.
        qconf = quantization_config(p.quant, self.dtype, self.dtype if self.strategy == "fsdp" else None)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        print(f"loading {self.config['model']} ({'unquantized' if p.quant == 'none' else p.quant}, compute {str(self.dtype).replace('torch.', '')}) "
              + (f"on {self.device}" if self.strategy != "fsdp" else f"for its fsdp shards on {self.device}"), flush=True)
        t_load = time.monotonic()
        self.meta_built = False  # this rank built the model on the meta device (fsdp's low-memory load)
        self.fsdp_load = None  # fsdp: "low-memory" | "full", and why
        if self.strategy == "fsdp":
            model = self._load_for_fsdp(qconf)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                self.config["model"], dtype=self.dtype, quantization_config=qconf, device_map={"": self.device},
            )
        print(f"model loaded in {time.monotonic() - t_load:.1f} s", flush=True)
        model.config.use_cache = False
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if qconf is not None:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        targets = p.lora_targets if isinstance(p.lora_targets, list) else "all-linear"
        lcfg = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM")
        try:
            self.model = get_peft_model(model, lcfg)
        except ValueError as e:
            raise RunFailed(f"LoRA targets {targets!r} do not match this model: {e}", "lora-targets",
                            "use lora_targets=\"all-linear\" or names printed by print(model)") from None
        if self.device == "cpu":
            # bitsandbytes repacks 4-bit weights for inference the first time a layer runs in eval mode under no_grad
            # on a CPU with AVX512-BF16 (our samples and evals), and keeps them packed: later training steps then run
            # through a kernel with no backward, and gradients to earlier layers are silently wrong. Never repack here.
            for m in self.model.modules():
                if hasattr(m, "support_avx512bf16_for_cpu"):
                    m.support_avx512bf16_for_cpu = False
        self._set_grad_ckpt(self.mem.grad_ckpt)
        self._resolve_loss(model.config)  # a scaled lm_head (Cohere, Granite) needs the plain loss
        oom.install_test_hook(loss_fn.decoder_of(self.model), lambda: self.mem)
        if ckpt is not None and not self.meta_built:  # the adapter goes in before DDP/FSDP wrap the model (FSDP
            self._load_adapter(ckpt)  # shards what it holds; a meta-built rank gets it in rank 0's broadcast)
        n_trainable = sum(q.numel() for q in self.model.parameters() if q.requires_grad)
        # low-memory load: rank 0's whole tensors (CPU), kept past fully_shard for the broadcast into the shards
        full_state = ({f"model.{k}": v for k, v in self.model.state_dict().items()}
                      if self.fsdp_load and self.fsdp_load["path"] == "low-memory" and self.dist.is_main else {})
        if self.dist.enabled:
            self.wrapped = self.dist.wrap(self.model, self._loss_sum, self.strategy, self.fsdp_plan)
        if self.fsdp_load and self.fsdp_load["path"] == "low-memory":
            self._fill_shards(full_state)
            del full_state
        self.trainable = [q for q in self.model.parameters() if q.requires_grad]  # fsdp: this rank's shards

        self._build_optimizer()
        self.scaler = None
        if self.dtype == torch.float16 and self.device != "cpu":
            if self.strategy == "fsdp":
                from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

                self.scaler = ShardedGradScaler("cuda")
            else:
                self.scaler = torch.amp.GradScaler("cuda")
        if self.strategy == "fsdp" and (p.sample_prompts or p.eval_every):
            self.emit("warning", id="fsdp-no-samples",
                      message="strategy=fsdp: no sample generations or generation evals during training (every rank "
                              "would have to generate in lock-step); the eval loss still runs. `tunedoc chat` "
                              "with the adapter afterwards")
        self._fit_memory()  # may step memory settings down and rebuild rows / optimizer

        if state is not None:
            self._load_checkpoint(ckpt, state)
        self.estimate = self._memory_estimate()
        self.emit(
            "start", estimate_gib=self.estimate.figure("reserved") if self.estimate else None, run_id=self.run_dir.name, model=self.config["model"], profile=p.name, total_steps=self.total_steps,
            device=self._device_name(), versions=_versions(), resumed_from_step=self.step or None,
            precision=str(self.dtype).replace("torch.", ""), quant=p.quant, trainable_params=n_trainable,
            samples=len(self.train_convs), rows=len(self.rows), packing=p.packing,
            micro_batch=self.mem.micro_batch, grad_accum=self.mem.grad_accum, world_size=self.dist.world,
            grad_ckpt=self.mem.grad_ckpt, loss_impl=self.loss_impl,
            global_batch=self._global_batch(),
            backend=self.backend if self.dist.enabled else None,
            strategy=self.strategy if self.dist.enabled else None,
            fsdp_load=({k: v for k, v in self.fsdp_load.items() if k in ("path", "why", "ranks")}
                       if self.fsdp_load else None),
        )
        self._status(status="running", step=self.step, total_steps=self.total_steps,
                     elapsed_s=round(self.elapsed, 1), world_size=self.dist.world)

    def _load_for_fsdp(self, qconf):
        """The model for --strategy fsdp. Low-memory load (trainer/fsdp.py): rank 0 loads it in CPU RAM, the other
        ranks build it on the meta device; the shards are filled after fully_shard (_fill_shards). The simple path
        (every rank loads the whole model on its device) where that cannot apply: TUNEDOC_FSDP_LOAD=full, or a
        model the other ranks cannot rebuild on meta. trainer.log says which ran."""
        import torch.distributed as dist
        from transformers import AutoModelForCausalLM

        def whole(device):
            return AutoModelForCausalLM.from_pretrained(self.config["model"], dtype=self.dtype,
                                                        quantization_config=qconf, device_map={"": device})

        if not fsdp.low_memory_requested():
            self.fsdp_load = {"path": "full", "why": f"{fsdp.LOAD_ENV}=full"}
            print(f"fsdp load: simple path ({fsdp.LOAD_ENV}=full): every rank loads the whole model on "
                  f"{self.device}, then shards it", flush=True)
            return whole(self.device)
        model, man, problem = None, [None], None
        if self.dist.is_main:
            model = whole("cpu")
            man = [fsdp.manifest(model)]
        dist.broadcast_object_list(man, src=0)
        if not self.dist.is_main:
            try:
                model = fsdp.build_on_meta(self.config["model"], self.dtype, qconf, man[0])
            except Exception as e:  # noqa: BLE001 - any failure to rebuild: the simple path, said in the log
                problem = f"rank {self.dist.rank}: {type(e).__name__}: {e}"
        problems = [x for x in self.dist.gather(problem) if x]
        if problems:
            self.fsdp_load = {"path": "full", "why": problems[0]}
            print(f"fsdp load: simple path: the low-memory load cannot apply ({problems[0]}); every rank loads the "
                  "whole model on its device, then shards it", flush=True)
            if self.dist.is_main:
                return model.to(self.device) if self.device != "cpu" else model
            return whole(self.device)
        self.meta_built = not self.dist.is_main
        qbytes = fsdp.share_quant_states(model, self.dist.rank, self.device, self.dist._device())
        self.fsdp_load = {"path": "low-memory", "quant_state_bytes": qbytes}
        where = ("rank 0 loaded the model in CPU RAM" if self.dist.is_main
                 else f"rank {self.dist.rank} built the model on the meta device (no weights)")
        print(f"fsdp load: low-memory: {where}; rank 0's tensors fill each rank's shards after fully_shard"
              + (f"; 4-bit quantization constants received from rank 0 ({qbytes / 2**10:.1f} KiB)" if qbytes and not self.dist.is_main else ""),
              flush=True)
        return model

    def _fill_shards(self, full_state: dict) -> None:
        """Low-memory load, after fully_shard: rank 0's whole tensors into every rank's shards (trainer/fsdp.py)."""
        held = fsdp.materialize(self.wrapped, full_state, self.meta_built, self.device, self.dist._device())
        self.fsdp_load.update(held, built_on="meta" if self.meta_built else "cpu")
        ranks = self.dist.gather({"rank": self.dist.rank, "built_on": self.fsdp_load["built_on"], **held})
        self.fsdp_load["ranks"] = ranks
        for r in ranks if self.dist.is_main else []:
            print(f"fsdp load: rank {r['rank']} (built on {r['built_on']}) holds {r['params_bytes'] / 2**20:.2f} MiB "
                  f"of the {r['full_bytes'] / 2**20:.2f} MiB of parameters", flush=True)

    def _check_template(self) -> None:
        """A LLaMA-Factory config's `template:` must be the model's own chat template (what this run formats with):
        otherwise the adapter would learn another prompt format than the one LLaMA-Factory trains and serves."""
        name = (self.config.get("llamafactory") or {}).get("template")
        if not name:
            return
        from tunedoc.trainer.llamafactory import template_problem

        tmpl = self.tokenizer.chat_template
        if isinstance(tmpl, dict):
            tmpl = "\n".join(map(str, tmpl.values()))
        problem = template_problem(name, tmpl or None, self.config["model"])
        if problem:
            raise RunFailed(problem, "chat-template", "remove template: from the config, or train it with LLaMA-Factory")

    def _strategy(self) -> str:
        """none (one process) | ddp | fsdp: config.json's launch (the CLI resolved auto there), else the profile;
        auto that nobody resolved is ddp."""
        if not self.dist.enabled:
            return "none"
        chosen = (self.config.get("launch") or {}).get("strategy") or self.profile.strategy
        return "fsdp" if chosen == "fsdp" else "ddp"

    def _build_rows(self) -> None:
        from tunedoc.trainer import data as D

        cutoff = self.mem.cutoff_len
        template_error = getattr(D, "TemplateError", ())
        try:
            samples = [s for s in D.build_samples(self.train_convs, self.tokenizer, cutoff)
                       if any(l != -100 for l in s["labels"])]
        except template_error as e:
            raise RunFailed(f"the model's chat template cannot format this data: {e}", "chat-template",
                            "use an instruct/chat model, or one whose tokenizer_config.json has a chat_template") from None
        if not samples:
            raise RunFailed("no training sample has assistant tokens within cutoff_len "
                            f"{cutoff}", "data", "raise cutoff_len or check the data's roles")
        self.rows = D.pack(samples, cutoff) if self.profile.packing else samples
        self.eval_rows = ([s for s in D.build_samples(self.eval_convs, self.tokenizer, cutoff)
                           if any(l != -100 for l in s["labels"])] if self.eval_convs else [])
        self._orders: dict[int, list[int]] = {}
        p = self.profile
        per_step = self.mem.micro_batch * self.mem.grad_accum * self.dist.world  # the global batch
        if p.max_steps > 0:
            self.total_steps = p.max_steps
        else:
            self.total_steps = max(1, math.ceil(len(self.rows) * p.epochs / per_step))
        self.stream_len = self.total_steps * per_step if p.max_steps > 0 else int(round(len(self.rows) * p.epochs))
        if self.dist.enabled:  # every rank gets the same number of micro-batches, the last step included
            unit = self.mem.micro_batch * self.dist.world
            self.stream_len = max(unit, self.stream_len // unit * unit)

    def _build_optimizer(self) -> None:
        import torch
        from transformers import get_scheduler

        p = self.profile
        opt = p.optimizer
        if opt in ("adamw-8bit", "paged-adamw-8bit") and self.device == "cpu":
            self.emit("warning", id="cpu-optimizer",
                      message=f"optimizer={opt} needs CUDA: using torch AdamW (32-bit states) on the CPU")
            opt = "adamw"
        if opt == "adamw":
            self.optimizer = torch.optim.AdamW(self.trainable, lr=p.lr, weight_decay=0.0)
        else:
            import bitsandbytes as bnb

            cls = bnb.optim.PagedAdamW8bit if opt == "paged-adamw-8bit" else bnb.optim.AdamW8bit
            self.optimizer = cls(self.trainable, lr=p.lr, weight_decay=0.0)
        warmup = int(p.warmup * self.total_steps) if p.warmup < 1 else int(p.warmup)
        self.scheduler = get_scheduler(p.scheduler, self.optimizer, num_warmup_steps=warmup,
                                       num_training_steps=self.total_steps)

    def _resolve_loss(self, model_config=None) -> None:
        """self.loss_impl: the loss that runs for mem.loss_impl on this device and model (trainer/loss.py)."""
        if model_config is not None:
            self._model_config = model_config  # kept for the OOM step-down's switch to the chunked loss
        try:
            self.loss_impl, note = loss_fn.resolve(self.mem.loss_impl, self.device,
                                                   getattr(self, "_model_config", None))
        except loss_fn.LossUnavailable as e:
            raise RunFailed(str(e), "loss-impl", loss_fn.LIGER_PIP if "not installed" in str(e) else None) from None
        if note:
            self.emit("warning", message=note, id="loss-impl")

    def _set_grad_ckpt(self, mode: str) -> None:
        from tunedoc.trainer import offload

        base = self.model.get_base_model()
        _, note = offload.context(mode, self.device)
        if note and not getattr(self, "_offload_noted", False):
            self._offload_noted = True
            self.emit("warning", message=note, id="offload-cpu")
        if mode != "off":
            enable = getattr(base, "activation_checkpointing_enable", None) or base.gradient_checkpointing_enable
            enable({"use_reentrant": False})
            base.enable_input_require_grads()

    # -----------------------------------------------------------------------------------------------------------
    # data stream

    def _stream_rows(self, start: int, stop: int) -> list[dict]:
        n = len(self.rows)
        out = []
        for pos in range(start, min(stop, self.stream_len)):
            epoch, i = divmod(pos, n)
            if epoch not in self._orders:
                import torch

                g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
                self._orders = {epoch: torch.randperm(n, generator=g).tolist()}
            out.append(self.rows[self._orders[epoch][i]])
        return out

    def _step_batches(self, step: int) -> list[list[dict]]:
        """The micro-batches of optimizer step `step` (0-based)."""
        mb, ga, world = self.mem.micro_batch, self.mem.grad_accum, self.dist.world
        rows = self._stream_rows(step * mb * ga * world, (step + 1) * mb * ga * world)
        if self.dist.enabled:
            rows = shard(rows, self.dist.rank, world)
        return [rows[i:i + mb] for i in range(0, len(rows), mb)]

    def _collate(self, rows: list[dict]):
        from tunedoc.trainer import data as D

        batch = D.collate(rows, self.tokenizer.pad_token_id, self.profile.packing)
        return {k: v.to(self.device) for k, v in batch.items()}

    # -----------------------------------------------------------------------------------------------------------
    # one optimizer step

    def _loss_sum(self, batch):
        """(loss summed over the assistant tokens, their count): trainer/loss.py, per loss_impl; a training forward
        under grad_ckpt=offload runs inside the offload hooks (trainer/offload.py)."""
        import contextlib

        import torch

        from tunedoc.trainer import offload

        ctx = offload.context(self.mem.grad_ckpt, self.device)[0] if torch.is_grad_enabled() else contextlib.nullcontext()
        with ctx, torch.autocast(device_type="cuda", dtype=self.dtype, enabled=self.device != "cpu" and self.dtype != torch.float32):
            return loss_fn.causal_lm_loss(self.model, batch, self.loss_impl)

    def _train_loss(self, batch):
        """_loss_sum for a forward that backward follows: through DDP or FSDP when there are several ranks (its
        forward sets up the gradient all-reduce, or gathers the sharded parameters)."""
        return self.wrapped(batch) if self.wrapped is not None else self._loss_sum(batch)

    def _train_step(self, step: int) -> tuple[float, float, int, int]:
        """Forward/backward over the step's micro-batches and one optimizer update.
        Returns (loss, grad_norm, tokens, samples)."""
        import torch

        micro = self._step_batches(step)
        tokens = sum(len(r["input_ids"]) for b in micro for r in b)  # non-pad tokens
        samples = sum(len(b) for b in micro)
        batches = [self._collate(b) for b in micro]
        n_tokens = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        # several ranks: normalize by the global token count; DDP and FSDP average gradients over ranks, hence x world
        n_tokens = self.dist.all_sum(n_tokens) or 1
        scale = self.dist.world / n_tokens
        total = 0.0
        for i, batch in enumerate(batches):
            with self.dist.no_sync(self.wrapped, last=i == len(batches) - 1):
                loss_sum, _ = self._train_loss(batch)
                if not torch.isfinite(loss_sum):
                    raise RunFailed(
                        f"the loss became {loss_sum.item()} at step {step + 1}; the weights of this step were not "
                        "saved and every earlier checkpoint is intact", "nan-loss",
                        "lower lr (e.g. half), use precision=bf16 instead of fp16, or raise warmup; then resume or "
                        "start again")
                loss = loss_sum * scale
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += loss_sum.item()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = fsdp.grad_norm_value(torch.nn.utils.clip_grad_norm_(self.trainable, MAX_GRAD_NORM))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.dist.enabled:
            total, tokens, samples = self.dist.all_sum(total), int(self.dist.all_sum(tokens)), int(self.dist.all_sum(samples))
        return total / n_tokens, grad_norm, tokens, samples

    # -----------------------------------------------------------------------------------------------------------
    # memory

    def _fit_memory(self) -> None:
        """Run forward+backward on the largest micro-batch (no update): an OOM steps memory settings down."""
        rows = sorted(self.rows, key=lambda r: len(r["input_ids"]), reverse=True)
        while True:
            try:
                batch = self._collate(rows[: self.mem.micro_batch])
                loss_sum, n = self._train_loss(batch)
                (loss_sum / max(n, 1)).backward()
                self.optimizer.zero_grad(set_to_none=True)
                return
            except Exception as e:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not oom.is_oom(e):
                    raise
                self._step_down(e, allow_cutoff=True)
                rows = sorted(self.rows, key=lambda r: len(r["input_ids"]), reverse=True)

    def _step_down(self, exc: BaseException, allow_cutoff: bool) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        oom.free_memory()
        fb = oom.next_fallback(self.mem)
        if fb is None or (fb.kind == "cutoff_len" and not allow_cutoff):
            raise RunFailed(f"CUDA out of memory: {str(exc).splitlines()[0]}", oom.ERROR_ID,
                            oom.HINT.format(cutoff=self.mem.cutoff_len)) from None
        self.emit("warning", id="oom-fallback", message=fb.message, kind=fb.kind)
        old = self.mem
        self.mem = fb.settings
        if self.mem.grad_ckpt != old.grad_ckpt and old.grad_ckpt == "off":
            self._set_grad_ckpt(self.mem.grad_ckpt)
        if self.mem.loss_impl != old.loss_impl:
            self._resolve_loss()
        if self.mem.cutoff_len != old.cutoff_len:
            self._build_rows()
            self._build_optimizer()  # total steps changed: a fresh schedule (nothing has been trained yet)
        self.config["effective"] = {"micro_batch": self.mem.micro_batch, "grad_accum": self.mem.grad_accum,
                                    "grad_ckpt": self.mem.grad_ckpt, "cutoff_len": self.mem.cutoff_len,
                                    "loss_impl": self.mem.loss_impl}
        write_json(self.run_dir / CONFIG, self.config)

    def _memory(self) -> dict:
        import torch

        if self.device != "cpu":
            return {"peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                    "mem_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1), "mem_kind": "cuda"}
        self.peak_rss = max(self.peak_rss, peak_rss_bytes())
        return {"peak_mem_mb": round(self.peak_rss / 2**20, 1), "mem_reserved_mb": None, "mem_kind": "rss"}

    def _global_batch(self) -> int:
        return self.mem.micro_batch * self.mem.grad_accum * self.dist.world

    def _device_name(self) -> str:
        import torch

        ranks = f" x {self.dist.world} ranks ({self.backend}), {self.strategy}" if self.dist.enabled else ""
        if self.device == "cpu":
            return f"cpu ({torch.get_num_threads()} threads){ranks}"
        return f"{self.device} {torch.cuda.get_device_name(self.device)}{ranks}"

    # -----------------------------------------------------------------------------------------------------------
    def train(self) -> str:
        """The loop. Returns the final status: completed | stopped."""
        p = self.profile
        session_start, session_steps = time.time(), 0
        first_step = self.step
        eval_every = p.sample_every or max(1, self.total_steps // 5)
        while self.step < self.total_steps:
            status = self._between_steps()
            if status:
                return status
            t0 = time.time()
            try:
                loss, grad_norm, tokens, samples = self._train_step(self.step)
            except RunFailed:
                raise
            except Exception as e:  # noqa: BLE001
                if not oom.is_oom(e) or self.step >= first_step + OOM_RETRY_STEPS:
                    raise
                self._step_down(e, allow_cutoff=False)
                continue  # the same step again, same rows, smaller pieces
            dt = time.time() - t0
            self.step += 1
            session_steps += 1
            self.elapsed += dt
            self.last_loss = loss
            rate = (time.time() - session_start) / session_steps
            mem = self._memory()
            if self.dist.enabled:  # every rank's peak; the figure shown is the largest
                ranks = self.dist.gather(mem["peak_mem_mb"])
                mem = {**mem, "peak_mem_mb": max(ranks), "rank_peak_mem_mb": ranks}
            self.emit(
                "step", step=self.step, total_steps=self.total_steps,
                epoch=round(min(self.step * self._global_batch(), self.stream_len) / len(self.rows), 4),
                loss=round(loss, 6), lr=self.scheduler.get_last_lr()[0], grad_norm=round(grad_norm, 6),
                tokens_per_s=round(tokens / dt, 1), samples_per_s=round(samples / dt, 3), **mem,
                elapsed_s=round(self.elapsed, 2), eta_s=round(rate * (self.total_steps - self.step), 1),
            )
            self._status(status="running", step=self.step, loss=round(loss, 6),
                         elapsed_s=round(self.elapsed, 1), peak_mem_mb=mem["peak_mem_mb"], mem_kind=mem["mem_kind"],
                         epoch=round(min(self.step * self._global_batch(), self.stream_len) / len(self.rows), 3))
            if self.eval_rows and (self.step % eval_every == 0 or self.step == self.total_steps):
                if self.strategy == "fsdp":  # every rank takes part in each sharded forward; rank 0 reports
                    loss = self.evaluate()
                    self.emit("eval", step=self.step, loss=round(loss, 6))
                elif self.dist.is_main:  # rank 0 evaluates and samples on its own copy; the others wait
                    self.emit("eval", step=self.step, loss=round(self.evaluate(), 6))
                self.dist.barrier()
            generates = self.strategy != "fsdp"  # a sharded model cannot generate on rank 0 alone
            if generates and p.eval_every and (self.step % p.eval_every == 0 or self.step == self.total_steps):
                if self.dist.is_main:  # BLEU/ROUGE on a few held-out answers (trainer/eval_training.py)
                    self._generation_eval()
                self.dist.barrier()
            if (generates and p.sample_every and p.sample_prompts and self.step % p.sample_every == 0
                    and self.step < self.total_steps):
                if self.dist.is_main:
                    self._samples()
                self.dist.barrier()
            if p.save_every and self.step % p.save_every == 0 and self.step < self.total_steps:
                self.save_checkpoint("every")
        if p.sample_prompts and self.dist.is_main and self.strategy != "fsdp":
            self._samples()
        self.save_checkpoint("end")
        return "completed"

    def _between_steps(self) -> str | None:
        """Handle signals and control files; returns "stopped" to end the run."""
        moved = self.threads.tick() if getattr(self, "threads", None) else None  # trainer/threads.py
        if moved:
            print(moved, flush=True)
        paused = False
        while True:
            # rank 0 reads the control files; every rank acts on what it read, and stops when any rank got a signal
            actions, signalled = self.dist.agree(control.take(self.run_dir) if self.dist.is_main else [],
                                                 bool(self.signal_name))
            if signalled:
                name = self.signal_name or "a signal (on another rank)"
                self.emit("warning", id="signal", message=f"{name} received: saving a checkpoint and stopping")
                self.save_checkpoint("signal")
                return "stopped"
            for action in actions:
                if action == "save":
                    self.save_checkpoint("request")
                elif action == "stop":
                    self.save_checkpoint("stop")
                    return "stopped"
                else:
                    paused = self._pause_or_resume(action, paused)
            if not paused:
                return None
            time.sleep(0.3)

    def evaluate(self) -> float:
        import torch

        self.model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            mb = self.mem.micro_batch
            forward = self.wrapped if self.strategy == "fsdp" else self._loss_sum  # fsdp: through the sharded root
            for i in range(0, len(self.eval_rows), mb):
                loss_sum, count = forward(self._collate(self.eval_rows[i:i + mb]))
                total, n = total + loss_sum.item(), n + count
        self.model.train()
        return total / max(n, 1)

    def _generation_eval(self) -> None:
        from tunedoc.trainer.eval_training import TrainingEval

        if getattr(self, "gen_eval", None) is None:
            self.gen_eval = TrainingEval(self)
        self.gen_eval()

    def _samples(self) -> None:
        from tunedoc.trainer.generate import generate_reply

        for prompt in self.profile.sample_prompts:
            text = generate_reply(self.model, self.tokenizer, [{"role": "user", "content": prompt}], SAMPLE_TOKENS)
            self.emit("sample", step=self.step, prompt=prompt, text=text)

    def install_signals(self) -> None:
        def handler(signum, frame):
            self.signal_name = signal.Signals(signum).name

        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):  # SIGBREAK: CTRL_BREAK_EVENT on Windows
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), handler)

    # -----------------------------------------------------------------------------------------------------------
    # checkpoints

    def save_checkpoint(self, reason: str) -> Path:
        """adapter + optimizer + scheduler + RNG + step, written to a temp dir and renamed into place."""
        import torch

        root = self.run_dir / CHECKPOINTS
        final = root / f"step-{self.step:06d}"
        lora = optim = None
        if self.strategy == "fsdp":  # every rank gathers the whole LoRA weights and optimizer states; rank 0 keeps them
            lora, optim = fsdp.lora_state(self.model), fsdp.optimizer_state(self.wrapped, self.optimizer)
        if not self.dist.is_main:  # rank 0 saves (the adapter and optimizer states are the same on every rank)
            self.dist.barrier()
            return final
        root.mkdir(exist_ok=True)
        if (final / "trainer_state.pt").is_file():  # already saved at this step (e.g. save then stop)
            self.dist.barrier()
            return final
        tmp = root / f".tmp-step-{self.step:06d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self._save_adapter(tmp, lora)  # base weights are frozen
        state = {
            "step": self.step, "elapsed_s": self.elapsed, "last_loss": self.last_loss,
            "optimizer": optim if optim is not None else self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "rng_python": list(random.getstate()[1]),
            "memory": [self.mem.micro_batch, self.mem.grad_accum, self.mem.grad_ckpt, self.mem.cutoff_len,
                       self.mem.loss_impl],
        }
        torch.save(state, tmp / "trainer_state.pt")
        os.replace(tmp, final)
        for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        self.emit("checkpoint", step=self.step, path=str(final), reason=reason)
        self.dist.barrier()
        return final

    def _save_adapter(self, path: Path, lora: dict | None) -> None:
        """The adapter in PEFT's format; under fsdp from the gathered LoRA weights (`lora`), the same files."""
        if lora is None:
            self.model.save_pretrained(path, save_embedding_layers=False)
        else:
            self.model.save_pretrained(path, save_embedding_layers=False, state_dict=lora)

    def _load_adapter(self, ckpt: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(ckpt / "adapter_model.safetensors"))
        device = next(self.model.parameters()).device  # fsdp's low-memory load: rank 0's model is still in CPU RAM
        set_peft_model_state_dict(self.model, {k: v.to(device) for k, v in weights.items()})

    def _load_checkpoint(self, ckpt: Path, state: dict) -> None:
        """Everything but the adapter (loaded before the model was wrapped): optimizer, scheduler, RNG, step."""
        import torch

        if self.strategy == "fsdp":
            fsdp.load_optimizer_state(self.wrapped, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_torch"])
        if state.get("rng_cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        py = random.getstate()
        random.setstate((py[0], tuple(state["rng_python"]), py[2]))
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_s"])
        self.last_loss = state.get("last_loss")

    def _memory_estimate(self):
        """The profiles estimator's figure for this model and the memory settings in force (None if it cannot
        tell, e.g. an architecture it does not know): recorded beside the measured peak at the end."""
        import dataclasses

        try:
            from tunedoc.profiles.archs import load_config
            from tunedoc.profiles.estimate import estimate

            prof = dataclasses.replace(self.profile, micro_batch=self.mem.micro_batch, grad_accum=self.mem.grad_accum,
                                       grad_ckpt=self.mem.grad_ckpt, cutoff_len=self.mem.cutoff_len,
                                       loss_impl=self.mem.loss_impl)
            return estimate(load_config(self.config["model"]), prof, corrections=False)
        except Exception:  # noqa: BLE001 - an estimate is a nicety; never fail a run over it
            return None

    def _record_memory(self) -> dict | None:
        """Estimate vs measured peak (reserved, GiB). On CUDA the pair also goes to the estimator's corrections,
        so later estimates for this GPU and architecture are corrected (and say so)."""
        import torch

        est = getattr(self, "estimate", None)
        if est is None:
            return None
        out = {"estimate_gib": round(est.figure("reserved"), 3), "kind": "reserved", "unit": "GiB"}
        if self.device.startswith("cuda") and torch.cuda.is_available():
            measured = torch.cuda.max_memory_reserved() / 2**30
            out["measured_gib"] = round(measured, 3)
            out["error_pct"] = round(100 * (out["estimate_gib"] - measured) / measured, 1) if measured else None
            try:
                from tunedoc.profiles import corrections

                from tunedoc.profiles.archs import load_config

                model_type = load_config(self.config["model"]).get("model_type")
                corrections.record(torch.cuda.get_device_name(0), model_type, out["estimate_gib"], measured,
                                   self.profile.name, run=self.run_dir.name, seq=self.mem.cutoff_len)
            except Exception as e:  # noqa: BLE001
                self.emit("warning", message=f"could not record the measured peak for the estimator: {e}",
                          id="memory-record")
        return out

    def save_adapter(self, lora: dict | None = None) -> str:
        """RUN/adapter/ (PEFT format, with the tokenizer), written to a temp dir and renamed into place; once per step.
        Under fsdp `lora` is the gathered LoRA state (fsdp.lora_state, every rank took part)."""
        final = self.run_dir / ADAPTER
        if self._adapter_step == self.step and final.is_dir():
            return str(final)
        tmp = self.run_dir / f".tmp-{ADAPTER}"
        shutil.rmtree(tmp, ignore_errors=True)
        self._save_adapter(tmp, lora)
        self.tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self._adapter_step = self.step
        return str(final)

    # -----------------------------------------------------------------------------------------------------------
    # the closing eval

    def final_eval(self) -> None:
        """config.json's `final_eval` (the demo writes one), after the last step: trainer/eval_training.py
        final_eval scores its examples with the model just trained. The adapter is saved first, so a kill during
        the eval loses nothing. Rank 0 alone evaluates."""
        spec = self.config.get("final_eval")
        if not isinstance(spec, dict) or not self.dist.is_main:
            return
        if self.strategy == "fsdp":  # rank 0 alone cannot run a sharded model: every rank would have to generate
            self.emit("warning", id="final-eval-skipped-fsdp",
                      message="strategy=fsdp: the closing eval is skipped (rank 0 holds only its shard); "
                              f"`tunedoc eval {self.run_dir.name} --base{self._runs_dir_flag()}` scores the adapter "
                              "afterwards")
            return
        from tunedoc.trainer.eval_training import final_eval

        self.save_adapter()
        final_eval(self, spec)

    def _runs_dir_flag(self) -> str:
        """' --runs-dir DIR' where this run is not in the default runs folder, for commands the user is told to type."""
        from tunedoc.trainer.rundir import default_runs_dir

        root = self.run_dir.resolve().parent
        return "" if root == default_runs_dir().resolve() else f" --runs-dir {shlex.quote(str(root))}"

    def _eval_control(self) -> None:
        """Before each batch of the closing eval: a pause waits here (status paused) until resume; stop or a signal
        raises control.EvalStopped. Rank 0 alone evaluates, so no rank takes part (unlike _between_steps)."""
        paused = False
        while True:
            if self.signal_name:
                raise control.EvalStopped(f"{self.signal_name} received")
            for action in control.take(self.run_dir):
                if action == "stop":
                    raise control.EvalStopped("stop requested")
                paused = self._pause_or_resume(action, paused)
            if not paused:
                return
            time.sleep(0.3)

    def _pause_or_resume(self, action: str, paused: bool) -> bool:
        """A pause or resume request against the paused state: status and event on a change; the new state."""
        if action == "pause" and not paused:
            self._status(status="paused")
            self.emit("paused", step=self.step)
            return True
        if action == "resume" and paused:
            self._status(status="running")
            self.emit("resumed", step=self.step)
            return False
        return paused

    # -----------------------------------------------------------------------------------------------------------
    def cleanup(self, status: str, error: RunFailed | None = None) -> None:
        lora = None
        if status in ("completed", "stopped") and self.strategy == "fsdp" and self.wrapped is not None:
            lora = fsdp.lora_state(self.model)  # every rank takes part in the gather
        if not self.dist.is_main:  # rank 0 writes the run's results; another rank only reports its error
            if error is not None:
                self.dist.record_error(self.run_dir, str(error), error.id, error.hint)
            return
        adapter = None
        if status in ("completed", "stopped") and hasattr(self, "model"):
            adapter = self.save_adapter(lora)
        if error is not None:
            self.emit("error", message=str(error), id=error.id, hint=error.hint)
        memory = self._record_memory() if status in ("completed", "stopped") else None
        self.emit("done", status=status, final_loss=self.last_loss, steps=self.step,
                  elapsed_s=round(self.elapsed, 2), adapter=adapter, memory=memory)
        fields = {"status": status, "step": self.step, "elapsed_s": round(self.elapsed, 1)}
        if memory:
            fields["memory"] = memory
        if error is not None:
            fields.update(error=redact(str(error)), error_id=error.id, hint=error.hint)
        update_status(self.run_dir, **fields)
        self.events.close()


def _lost_a_rank(e: BaseException) -> bool:
    """A collective failed because a peer process is gone (gloo: connection closed/reset; NCCL: a DistBackendError)."""
    text = f"{type(e).__name__}: {e}"
    return ("DistBackendError" in text or "Connection closed by peer" in text or "Connection reset by peer" in text
            or "ProcessGroupGloo" in text or "NCCL communicator was aborted" in text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedoc.trainer.recipe", description="Run one tunedoc training run.")
    ap.add_argument("run_dir", help="the run directory (with config.json) that `tunedoc train` created")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = ap.parse_args(argv)
    import psutil

    run_dir = Path(args.run_dir)
    dist = Dist.from_env()
    if dist.is_main:  # under torchrun the launcher (trainer/multi.py) is the run's process and wrote its own pid
        pid = {} if dist.enabled else {"pid": os.getpid(), "pid_started": psutil.Process().create_time()}
        update_status(run_dir, status="running", error=None, error_id=None, hint=None, **pid)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # bitsandbytes on an AVX512-BF16 CPU asks for `pip install kernels` (a Hub download) at import; its own CPU
    # kernels work without it, so the line is noise in trainer.log
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda r: "kernels-community" not in r.getMessage())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # before torch loads (OpenMP reads these once): threads for the cores actually free, waiting that sleeps
    # instead of spinning (trainer/threads.py; a busy 2-core box ran at 1/30 speed without it)
    from tunedoc.trainer.threads import ThreadGovernor, configure

    plan = configure()
    print(f"cpu threads: {plan['threads']} ({plan['source']}: {plan['cores']} cores"
          + (f", {plan['busy']} busy with other processes" if "busy" in plan else "")
          + f"; OMP_WAIT_POLICY={plan['wait_policy']})", flush=True)
    recipe = Recipe(run_dir, resume=args.resume)
    recipe.threads = ThreadGovernor(plan)
    recipe.install_signals()
    status, error = "failed", None
    try:
        recipe.setup()
        status = recipe.train()
        if status == "completed":
            recipe.final_eval()
    except RunFailed as e:
        error = e
    except Exception as e:  # noqa: BLE001 - every crash becomes an error event
        traceback.print_exc()
        if recipe.dist.enabled and _lost_a_rank(e):
            error = RunFailed(f"lost contact with another rank at step {recipe.step + 1}: {str(e).splitlines()[0][:200]}",
                              "rank-lost", "the launcher's error event names the rank that failed first; "
                              f"`tunedoc train --resume {run_dir.name}` continues from the last checkpoint")
        elif oom.is_oom(e):
            error = RunFailed(f"CUDA out of memory at step {recipe.step + 1}: {str(e).splitlines()[0]}",
                              oom.ERROR_ID, oom.HINT.format(cutoff=getattr(getattr(recipe, "mem", None), "cutoff_len", "?")))
        else:
            error = RunFailed(f"{type(e).__name__}: {e}", "crash",
                              f"the traceback is in {run_dir / 'trainer.log'}; checkpoints saved so far are intact")
    try:
        recipe.cleanup(status, error)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        if recipe.dist.is_main:
            update_status(run_dir, status="failed", error="cleanup failed; see trainer.log")
        return 1
    if status in ("completed", "stopped"):
        recipe.dist.close()
    return 0 if status in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
