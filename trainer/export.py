"""Export a run: its PEFT adapter (copied as is), or a merged model that plain transformers loads.

    export_run(run_dir)                      -> {"kind": "adapter", "path": ...}
    export_run(run_dir, merge=True)          -> {"kind": "merged", "path": RUN/merged, "dtype": "float16", ...}

Merging loads the base model's original weights unquantized in 16-bit (fp16, or bf16 where the GPU supports it),
adds the LoRA deltas (`merge_and_unload`), and saves safetensors plus the tokenizer: no tunedoc, peft or
bitsandbytes is needed to load the result. Merging into the original weights, rather than dequantizing the 4-bit
copy the adapter trained against, is what QLoRA's authors and peft recommend; the difference is the quantization
error. Output is written to a temp dir and renamed, so a crash leaves no half-written model behind.

Never delete what tunedoc did not write: every export leaves a marker file (`.tunedoc-export.json`) in its folder.
An output folder that exists must be empty, or an earlier export of the same kind (replaced only with `force`;
the run's own default folders, RUN/adapter-export and RUN/merged, are replaced freely). Anything else is refused
before any work starts, so `--out ~/models` cannot lose the user's files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from tunedoc.trainer.chat import find_adapter
from tunedoc.trainer.rundir import CONFIG, MERGED, read_json


MARKER = ".tunedoc-export.json"


class ExportError(RuntimeError):
    pass


def check_target(target: Path, kind: str, run_dir: Path, force: bool = False) -> None:
    """Raise ExportError unless `target` may be (re)written by an export of `kind` without losing anyone's files."""
    target, run_dir = Path(target), Path(run_dir)
    resolved = target.resolve()
    if resolved == run_dir.resolve() or resolved in run_dir.resolve().parents:
        raise ExportError(f"--out {target} would replace the run itself; choose a folder outside {run_dir}")
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir() or target.is_symlink():
        raise ExportError(f"--out {target} exists and is not a folder; choose a new folder name")
    if not any(target.iterdir()):
        return
    owned = resolved.parent == run_dir.resolve() and target.name in ("adapter-export", MERGED)
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if owned and (marker is None or marker.get("kind") == kind):
        return
    if not isinstance(marker, dict):
        raise ExportError(f"{target} is not empty and was not written by `tunedoc export`: nothing was changed. "
                          f"Choose a new or empty folder, e.g. --out {target / (run_dir.name + '-' + kind)}")
    if marker.get("kind") != kind:
        raise ExportError(f"{target} holds an earlier {marker.get('kind')} export, not a {kind} export; "
                          f"choose another folder")
    if not force:
        raise ExportError(f"{target} holds an earlier {kind} export (of run {marker.get('run', '?')}); "
                          f"add --force to replace it, or choose another folder")


def _mark(folder: Path, kind: str, run_dir: Path) -> None:
    (folder / MARKER).write_text(json.dumps({"kind": kind, "run": run_dir.name, "time": time.time()}) + "\n",
                                 encoding="utf-8")


def _dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, merge: bool = False,
               dtype: str = "auto", progress: Callable[[str], None] = lambda m: None, force: bool = False) -> dict:
    run_dir = Path(run_dir)
    config = read_json(run_dir / CONFIG)
    adapter = find_adapter(run_dir)
    if adapter is None:
        raise ExportError(f"run {run_dir.name} has no adapter or checkpoint yet; let it reach a checkpoint "
                          f"(`tunedoc save {run_dir.name}`) or finish")
    if not merge:
        target = Path(out) if out else run_dir / "adapter-export"
        if target.resolve() == adapter.resolve():
            return {"kind": "adapter", "path": str(target), "source": str(adapter)}
        check_target(target, "adapter", run_dir, force)

        def copy(tmp: Path) -> None:
            shutil.copytree(adapter, tmp, ignore=shutil.ignore_patterns("trainer_state.pt"))
            _mark(tmp, "adapter", run_dir)

        _replace_dir(target, copy)
        progress(f"adapter (PEFT format) from {adapter}")
        return {"kind": "adapter", "path": str(target), "source": str(adapter), "base_model": config.get("model")}

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedoc.trainer.chat import quiet_libraries

    quiet_libraries()
    dt = _dtype(dtype)
    base_path = config.get("model")
    if not base_path:
        raise ExportError(f"{run_dir / CONFIG} does not name the base model")
    target = Path(out) if out else run_dir / MERGED
    check_target(target, "merged", run_dir, force)  # before the slow load, not after it
    progress(f"loading base model {base_path} in {str(dt).replace('torch.', '')} (unquantized)")
    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dt, device_map={"": "cpu"})
    except OSError as e:
        raise ExportError(f"cannot load the base model {base_path!r}: {e}") from None
    progress(f"merging adapter {adapter}")
    model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    model.config.use_cache = True
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    tok_src = adapter if (adapter / "tokenizer_config.json").is_file() else base_path
    tokenizer = AutoTokenizer.from_pretrained(tok_src)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _mark(tmp, "merged", run_dir)

    progress(f"writing {target}")
    _replace_dir(target, write)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {"kind": "merged", "path": str(target), "dtype": str(dt).replace("torch.", ""), "adapter": str(adapter),
            "base_model": base_path, "bytes": size}


def _replace_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a temp folder, then swap it in. Only called after check_target allowed replacing `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    fill(tmp)
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
