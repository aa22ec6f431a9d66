"""Measured-vs-estimate records from real runs, and the correction they imply for later estimates.

The trainer calls `record(...)` at the end of a CUDA run with the estimate it started from and the peak it
measured. `estimate(..., gpu=NAME)` then scales its allocator part by the median ratio of earlier runs on the same
GPU and architecture, and says so in `Estimate.correction` and in its assumptions: a correction is never hidden.

Records are JSON lines in $TUNEDOC_HOME/measured.jsonl (default ~/.cache/tunedoc/measured.jsonl).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path


MIN_FACTOR, MAX_FACTOR = 0.5, 2.0  # a ratio outside this is a broken record, not a correction


def records_path() -> Path:
    home = os.environ.get("TUNEDOC_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "tunedoc") / "measured.jsonl"


def _norm_gpu(name: str) -> str:
    n = " ".join(name.lower().replace("nvidia", "").replace("geforce", "").split())
    return n


def record(gpu_name: str, model_type: str, estimate_gb: float, measured_gb: float, profile_name: str,
           **extra) -> Path:
    """Append one run's estimate and measured peak (both GiB, reserved: torch.cuda.max_memory_reserved()/2**30
    against Estimate.figure("reserved")). Returns the file written. Extra keys (seq, model, run id) are kept."""
    if estimate_gb <= 0 or measured_gb <= 0:
        raise ValueError("estimate_gb and measured_gb must be positive GiB figures")
    path = records_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"t": time.time(), "gpu": gpu_name, "model_type": model_type, "estimate_gb": round(estimate_gb, 4),
           "measured_gb": round(measured_gb, 4), "profile": profile_name, **extra}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
    return path


def load_records(path: Path | None = None) -> list[dict]:
    """Every well-formed record; a torn or foreign line is skipped, never fatal."""
    path = path or records_path()
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            if float(row["estimate_gb"]) > 0 and float(row["measured_gb"]) > 0:
                out.append(row)
        except (ValueError, KeyError, TypeError):
            continue
    return out


def correction_for(gpu_name: str, model_type: str, path: Path | None = None) -> dict | None:
    """The median measured/estimate ratio of earlier runs on this GPU and architecture, or None."""
    g = _norm_gpu(gpu_name)
    ratios = [r["measured_gb"] / r["estimate_gb"] for r in load_records(path)
              if _norm_gpu(str(r.get("gpu", ""))) == g and r.get("model_type") == model_type]
    ratios = [x for x in ratios if MIN_FACTOR <= x <= MAX_FACTOR]
    if not ratios:
        return None
    factor = statistics.median(ratios)
    pct = round((factor - 1) * 100)
    runs = len(ratios)
    return {"factor": round(factor, 4), "runs": runs, "gpu": gpu_name, "model_type": model_type,
            "text": f"corrected {pct:+d} % from {runs} run{'s' if runs != 1 else ''} on {gpu_name} ({model_type})",
            "source": str(path or records_path())}


__all__ = ["record", "load_records", "correction_for", "records_path"]
