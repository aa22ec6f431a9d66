"""Rules: pure functions from Facts to Findings.

    findings = evaluate(facts)   # errors first, then warnings, info, ok; within a severity in AREAS order

Unknown facts (None) never fire a rule, so the TUI can evaluate partial facts while probes still run. Error
signatures found in pasted logs (facts.signatures, ids from the catalog) become findings too, merged with a probed
finding of the same id so nothing is reported twice. An area with a problem does not also show its `ok` line.

The id catalog (`doctor.rules.catalog.CATALOG` has the explanations; a rule may lower or raise a severity where the
facts say so, e.g. `nvcc-mismatch` is `info` when nothing installed compiles CUDA code, `win-libuv` is `info` as a
multi-GPU hint before anything failed, `driver-too-old` is `warning` when minor-version compatibility applies):

    id                       severity area      meaning
    no-driver                error    driver    No NVIDIA driver found
    container-no-gpu         error    driver    This container was started without GPU access
    container-nvml-lost      error    driver    The container lost access to the GPU (NVML: Unknown Error)
    driver-not-loaded        error    driver    The NVIDIA driver is installed but not loaded
    driver-library-mismatch  error    driver    NVIDIA driver and library versions do not match
    driver-too-old           error    driver    The NVIDIA driver is too old for this PyTorch build
    wsl-linux-driver         error    driver    A Linux NVIDIA driver is installed inside WSL
    wsl-libcuda-path         error    driver    WSL2: libcuda is not found under /usr/lib/wsl/lib
    driver-ok                ok       driver    NVIDIA driver
    no-gpu                   warning  gpu       No NVIDIA GPU on this machine
    mig-device-selection     warning  gpu       MIG is enabled: select one MIG instance
    device-order             warning  gpu       CUDA and nvidia-smi number the GPUs differently
    gpu-no-p2p               warning  gpu       These GPUs have no peer-to-peer access: NCCL can hang
    gpu-link-slow            info     gpu       Some GPUs are linked only across CPU sockets: slower gradient sync
    gpu-mixed                info     gpu       Different GPU models: the smallest card decides the fit
    bf16-unsupported         warning  gpu       This GPU has no bf16: train in fp16
    flash-attn-unsupported   warning  gpu       FlashAttention 2 does not support this GPU or platform
    gpu-ok                   ok       gpu       GPU
    nvcc-missing             info     cuda      No CUDA toolkit (nvcc): only needed to build CUDA extensions
    nvcc-mismatch            warning  cuda      The CUDA toolkit differs from PyTorch's CUDA
    libcudart-missing        error    cuda      The CUDA runtime library (libcudart) cannot be loaded
    cuda-ok                  ok       cuda      CUDA toolkit
    torch-missing            error    torch     PyTorch is not installed in the target Python
    torch-cpu-build          error    torch     PyTorch is a CPU-only build on a machine with an NVIDIA GPU
    torch-import-dll         error    torch     PyTorch fails to import: a DLL or shared library does not load
    torch-import-error       error    torch     PyTorch crashes or fails on import
    torch-arch-unsupported   error    torch     This PyTorch build has no kernels for this GPU
    torch-cuda-unavailable   error    torch     PyTorch is built with CUDA but cannot use the GPU
    torch-cuda-op-failed     error    torch     A tiny CUDA operation failed
    torch-env-mismatch       warning  torch     pip and python are different interpreters
    torchvision-mismatch     error    torch     torchvision was built for another PyTorch
    cudnn-mismatch           error    torch     cuDNN version mismatch
    extension-abi-mismatch   error    torch     A compiled extension was built against another PyTorch
    cuda-oom                 error    torch     CUDA out of memory
    deepspeed-op-build       error    torch     A DeepSpeed op failed to build
    torch-no-nccl            warning  torch     This PyTorch build has no NCCL: training on several GPUs cannot use it
    torch-ok                 ok       torch     PyTorch
    bnb-missing              warning  bnb       bitsandbytes is not installed: no 4-bit QLoRA
    bnb-no-gpu-binary        error    bnb       bitsandbytes loaded no CUDA library
    bnb-too-old              error    bnb       This bitsandbytes cannot work here
    bnb-import-error         error    bnb       bitsandbytes fails to import
    bnb-quant-failed         error    bnb       bitsandbytes 4-bit quantization failed on the GPU
    bnb-ok                   ok       bnb       bitsandbytes
    win-libuv                warning  platform  torch.distributed on Windows: libuv is not built in
    win-no-nccl              warning  platform  Windows has no NCCL: multi-GPU needs gloo or WSL2
    win-triton               warning  platform  Triton is Linux-only: install triton-windows
    win-pagefile-small       error    platform  Windows ran out of virtual memory: the paging file is too small
    win-symlinks             warning  platform  This Windows user cannot create symlinks: the HF cache duplicates files
    win-long-paths           warning  platform  Windows long paths are disabled
    platform-ok              ok       platform  Platform
    hf-disk-low              warning  hf        Little free disk for models
    hf-endpoint              info     hf        Hugging Face mirror in use
    hf-offline               info     hf        HF_HUB_OFFLINE is set: no downloads
    hf-unreachable           warning  hf        The Hugging Face Hub (or its mirror) does not answer
    hf-mirror-only           info     hf        huggingface.co does not answer, the mirror does
    hf-ok                    ok       hf        Hugging Face
"""

from __future__ import annotations

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.findings import AREAS, SEVERITIES, Finding
from tunedoc.doctor.rules import hardware, multigpu, python, signatures, system
from tunedoc.doctor.rules.catalog import CATALOG

RULES = [
    *hardware.RULES,
    *python.RULES,
    *system.RULES,
    *multigpu.RULES,
]


def evaluate(facts: Facts) -> list[Finding]:
    found: dict[str, Finding] = {}
    for rule in RULES:
        for f in rule(facts) or []:
            _add(found, f)
    for f in signatures.from_signatures(facts, found):
        _add(found, f)
    # an area with a problem does not also show its "ok" line; advice about a working GPU (no bf16) is no problem
    bad_areas = {f.area for f in found.values() if f.severity in ("error", "warning") and f.id not in ADVICE}
    out = [f for f in found.values() if not (f.severity == "ok" and f.area in bad_areas)]
    _root_causes(out)
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    area = {a: i for i, a in enumerate(AREAS)}
    return sorted(out, key=lambda f: (sev.get(f.severity, 9), 0 if f.explains else 1, area.get(f.area, 99)))


# root cause -> the findings it explains when both stand (fix the root and they go away). Sources: the corpus
# threads (a CPU torch: "Torch not compiled with CUDA enabled", xformers built for a CUDA torch; an old driver: the
# CUDA init error; a container without GPU access: no driver, no CUDA) and shared/KNOWLEDGE.md PART 1.4.
EXPLAINS: dict[str, tuple[str, ...]] = {
    "no-driver": ("torch-cuda-unavailable", "torch-cuda-op-failed", "bnb-no-gpu-binary", "bnb-quant-failed"),
    "container-no-gpu": ("no-driver", "torch-cuda-unavailable", "torch-cuda-op-failed", "bnb-no-gpu-binary",
                         "bnb-quant-failed"),
    "container-nvml-lost": ("torch-cuda-unavailable", "torch-cuda-op-failed", "driver-library-mismatch"),
    "driver-not-loaded": ("torch-cuda-unavailable", "torch-cuda-op-failed", "bnb-quant-failed"),
    "driver-library-mismatch": ("torch-cuda-unavailable", "torch-cuda-op-failed", "bnb-quant-failed"),
    "driver-too-old": ("torch-cuda-unavailable", "torch-cuda-op-failed", "bnb-quant-failed", "bnb-no-gpu-binary"),
    "torch-cpu-build": ("torch-cuda-unavailable", "extension-abi-mismatch", "bnb-no-gpu-binary", "bnb-quant-failed",
                        "win-libuv", "win-no-nccl"),
    "torch-missing": ("bnb-import-error", "torchvision-mismatch", "extension-abi-mismatch"),
    "torch-import-dll": ("bnb-import-error", "torch-cuda-unavailable"),
    "torch-arch-unsupported": ("torch-cuda-op-failed", "bnb-quant-failed"),
    "wsl-linux-driver": ("wsl-libcuda-path", "torch-cuda-unavailable", "torch-cuda-op-failed"),
}


def _root_causes(findings: list[Finding]) -> None:
    """Mark which standing finding explains which others (`explains`), and say so in its detail."""
    by_id = {f.id: f for f in findings}
    for f in findings:
        if f.severity not in ("error", "warning"):
            continue
        explained = [i for i in EXPLAINS.get(f.id, ()) if i in by_id and by_id[i].severity in ("error", "warning")]
        if explained:
            f.explains = explained
            names = "; ".join(by_id[i].title for i in explained)
            f.detail = (f.detail + f" This is the root cause: it also explains {names}.").strip()


ADVICE = {"bf16-unsupported", "gpu-no-p2p"}  # gpu-no-p2p: tunedoc train handles it; other tools need the fix


def _add(found: dict[str, Finding], f: Finding) -> None:
    old = found.get(f.id)
    if old is None:
        found[f.id] = f
        return
    for e in f.evidence:
        if e not in old.evidence:
            old.evidence.append(e)
    if not old.fixes:
        old.fixes = f.fixes


__all__ = ["evaluate", "CATALOG"]
