"""The finding catalog: every id the doctor can emit, its default severity and area, and the explanation.

Ids are a public contract for `tunedoc doctor --json` users: never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    severity: str
    area: str
    title: str  # default one-line title (rules usually write a more specific one)
    detail: str  # why it matters
    url: str | None = None


C = Entry
CATALOG: dict[str, Entry] = {
    # driver
    "no-driver": C("error", "driver", "No NVIDIA driver found",
                   "An NVIDIA GPU is on this machine but neither NVML (libnvidia-ml) nor nvidia-smi was found: the "
                   "driver is not installed, so nothing can use the GPU."),
    "container-no-gpu": C("error", "driver", "This container was started without GPU access",
                          "Inside a container the driver comes from the host through the NVIDIA Container Toolkit. "
                          "Without `--gpus all` (docker) or a GPU resource (Kubernetes), no driver library is "
                          "mounted and no GPU is visible.",
                          "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"),
    "container-nvml-lost": C("error", "driver", "The container lost access to the GPU (NVML: Unknown Error)",
                             "nvidia-smi and CUDA in a running container fail with \"Failed to initialize NVML: "
                             "Unknown Error\" when the host reloads systemd (daemon-reload) with the systemd cgroup "
                             "driver, or the toolkit runs with no-cgroups: the container keeps its mounts but loses "
                             "the device permission. Restarting the container restores it; the lasting fix is the "
                             "cgroupfs driver or the toolkit's device-node symlinks.",
                             "https://github.com/NVIDIA/nvidia-container-toolkit/issues/48"),
    "driver-not-loaded": C("error", "driver", "The NVIDIA driver is installed but not loaded",
                           "The user-space libraries are present but the kernel module does not answer. Usual "
                           "causes: Secure Boot blocks the unsigned module, or a kernel update without a rebuilt "
                           "DKMS module."),
    "driver-library-mismatch": C("error", "driver", "NVIDIA driver and library versions do not match",
                                 "The kernel module and the user-space libraries come from different driver "
                                 "versions, typically after a driver upgrade without a reboot. NVML, nvidia-smi and "
                                 "CUDA all fail until they match."),
    "driver-too-old": C("error", "driver", "The NVIDIA driver is too old for this PyTorch build",
                        "A CUDA program needs a driver at least as new as the CUDA it was built with (within a "
                        "major, minor-version compatibility allows older drivers with a limited feature set)."),
    "wsl-linux-driver": C("error", "driver", "A Linux NVIDIA driver is installed inside WSL",
                          "Under WSL2 the Windows driver provides the GPU through /usr/lib/wsl/lib. A Linux driver "
                          "installed inside WSL shadows those libraries and breaks CUDA.",
                          "https://docs.nvidia.com/cuda/wsl-user-guide/index.html"),
    "wsl-libcuda-path": C("error", "driver", "WSL2: libcuda is not found under /usr/lib/wsl/lib",
                          "CUDA programs in WSL2 load libcuda.so from /usr/lib/wsl/lib, provided by the Windows "
                          "driver. When it is missing or not on the loader path, CUDA libraries fail to load.",
                          "https://docs.nvidia.com/cuda/wsl-user-guide/index.html"),
    "driver-ok": C("ok", "driver", "NVIDIA driver", ""),
    "no-gpu": C("warning", "gpu", "No NVIDIA GPU on this machine",
                "Without an NVIDIA GPU, training runs on the CPU: fine for the built-in demo and tiny models, far "
                "too slow for real models."),
    # gpu
    "mig-device-selection": C("warning", "gpu", "MIG is enabled: select one MIG instance",
                              "With MIG, a CUDA process sees one instance only when CUDA_VISIBLE_DEVICES names it "
                              "(MIG-<uuid>); otherwise device enumeration fails or shows one device."),
    "device-order": C("warning", "gpu", "CUDA and nvidia-smi number the GPUs differently",
                      "CUDA orders GPUs fastest first by default; nvidia-smi orders by PCI bus. With different GPUs, "
                      "CUDA_VISIBLE_DEVICES=0 may not be the GPU you picked in nvidia-smi."),
    "bf16-unsupported": C("warning", "gpu", "This GPU has no bf16: train in fp16",
                          "bf16 needs compute capability 8.0 (Ampere) or newer. Use fp16 (tunedoc's precision=auto "
                          "does) and attn_implementation=\"sdpa\"."),
    "flash-attn-unsupported": C("warning", "gpu", "FlashAttention 2 does not support this GPU or platform",
                                "FlashAttention 2 supports Ampere, Ada and Hopper GPUs on Linux. Use "
                                "attn_implementation=\"sdpa\" (PyTorch's built-in attention) instead."),
    "gpu-no-p2p": C("warning", "gpu",
                    "These GPUs have no peer-to-peer access: NCCL can hang without NCCL_P2P_DISABLE=1",
                    "NVIDIA's driver gives GeForce RTX 40 and 50-series cards no peer-to-peer (P2P) access to each "
                    "other (nvidia-smi topo -p2p r says GNS/NS), and NCCL's P2P transport was seen to hang on them at "
                    "the first all-reduce. With NCCL_P2P_DISABLE=1, NCCL passes the gradients through host memory "
                    "instead. `tunedoc train --gpus` sets it for these cards by itself; torchrun, accelerate launch "
                    "and other tools need it in their environment.",
                    "https://github.com/NVIDIA/nccl-tests/issues/117"),
    "gpu-link-slow": C("info", "gpu", "Some GPUs are linked only across CPU sockets: slower gradient sync",
                       "`nvidia-smi topo -m` says SYS between these cards: their traffic crosses the link between "
                       "the CPU sockets (QPI/UPI/Infinity Fabric), the slowest path NCCL has. LoRA all-reduces only "
                       "the adapter's gradients (megabytes per step), so data-parallel QLoRA still scales, but less "
                       "than on cards behind one CPU; full fine-tuning and sharded (FSDP) runs feel it more."),
    "gpu-mixed": C("info", "gpu", "Different GPU models: the smallest card decides the fit, the slowest the speed",
                   "Data-parallel training puts the same model, batch and memory plan on every card and waits for "
                   "all of them at each step: the smallest card decides what fits and the slowest one sets the "
                   "pace. Pick matching cards with `--gpus`, or accept both limits."),
    "gpu-ok": C("ok", "gpu", "GPU", ""),
    # cuda
    "nvcc-missing": C("info", "cuda", "No CUDA toolkit (nvcc): only needed to build CUDA extensions",
                      "PyTorch and bitsandbytes wheels bundle their CUDA libraries; nvcc is only needed to compile "
                      "extensions such as flash-attn or DeepSpeed ops from source."),
    "nvcc-mismatch": C("warning", "cuda", "The CUDA toolkit differs from PyTorch's CUDA",
                       "Building a CUDA extension (flash-attn, DeepSpeed ops, xformers from source) needs an nvcc "
                       "of the same major version as torch.version.cuda. Training itself does not use nvcc."),
    "libcudart-missing": C("error", "cuda", "The CUDA runtime library (libcudart) cannot be loaded",
                           "An extension or library was built for a CUDA runtime that is not installed, or the "
                           "nvidia-* pip wheels that carry it are missing."),
    "cuda-ok": C("ok", "cuda", "CUDA toolkit", ""),
    # torch
    "torch-missing": C("error", "torch", "PyTorch is not installed in the target Python",
                       "Training needs PyTorch in the interpreter that runs it."),
    "torch-cpu-build": C("error", "torch", "PyTorch is a CPU-only build on a machine with an NVIDIA GPU",
                         "This torch has no CUDA support (torch.version.cuda is None), so the GPU is unused. Usual "
                         "causes: pip's default index on Windows, a mirror without CUDA wheels, or another package "
                         "reinstalling torch from PyPI."),
    "torch-import-dll": C("error", "torch", "PyTorch fails to import: a DLL or shared library does not load",
                          "torch could not load one of its native libraries (WinError 126/127/1114 on Windows, a "
                          "missing .so on Linux)."),
    "torch-import-error": C("error", "torch", "PyTorch crashes or fails on import", ""),
    "torch-arch-unsupported": C("error", "torch", "This PyTorch build has no kernels for this GPU",
                                "Each PyTorch wheel is compiled for a list of GPU architectures. New GPUs (RTX 50 / "
                                "sm_120) need CUDA 12.8+ builds (torch 2.7+); old ones (Pascal, Maxwell) were "
                                "dropped from cu128+ builds. Running anyway gives \"no kernel image is available for "
                                "execution on the device\"."),
    "torch-cuda-unavailable": C("error", "torch", "PyTorch is built with CUDA but cannot use the GPU",
                                "torch.cuda.is_available() is False although torch has CUDA support."),
    "torch-cuda-op-failed": C("error", "torch", "A tiny CUDA operation failed", ""),
    "torch-env-mismatch": C("warning", "torch", "pip and python are different interpreters",
                            "The `pip` on PATH installs into another Python than the one that runs tunedoc's "
                            "training: packages you install with it are invisible here. Always use "
                            "`<python> -m pip`."),
    "torchvision-mismatch": C("error", "torch", "torchvision was built for another PyTorch",
                              "Each torchvision release is built against one torch release (torchvision 0.N+15 for "
                              "torch 2.N). Upgrading torch alone leaves the old torchvision, whose compiled operators "
                              "no longer load: \"operator torchvision::nms does not exist\"."),
    "cudnn-mismatch": C("error", "torch", "cuDNN version mismatch",
                        "An older cuDNN on LD_LIBRARY_PATH or PATH shadows the one bundled with PyTorch."),
    "extension-abi-mismatch": C("error", "torch", "A compiled extension was built against another PyTorch",
                                "Extensions such as flash-attn must be built for the exact torch version and C++ "
                                "ABI installed; an undefined symbol on import means they were not."),
    "cuda-oom": C("error", "torch", "CUDA out of memory",
                  "The run needed more GPU memory than was free. QLoRA fits by trading speed for memory: micro-batch "
                  "1 with gradient accumulation, a shorter cutoff length, gradient checkpointing, paged 8-bit AdamW, "
                  "and expandable segments against fragmentation."),
    "deepspeed-op-build": C("error", "torch", "A DeepSpeed op failed to build",
                            "DeepSpeed compiles its ops (cpu_adam, fused_adam) on first use; that needs nvcc of the "
                            "same CUDA major as torch, CUDA_HOME and the Python headers."),
    "torch-no-nccl": C("warning", "torch", "This PyTorch build has no NCCL: training on several GPUs cannot use it",
                       "NCCL is the library torch.distributed uses to sum gradients between NVIDIA GPUs on Linux; the "
                       "official CUDA wheels bundle it (the nvidia-nccl-cu* package). A build without it (a "
                       "source build with USE_NCCL=0, some distro and conda packages, a damaged nvidia-nccl install) "
                       "fails under torchrun/accelerate with \"Distributed package doesn't have NCCL built in\"; "
                       "tunedoc falls back to gloo, which copies every gradient through host memory. One GPU is "
                       "unaffected.", "https://pytorch.org/docs/stable/distributed.html#backends"),
    "torch-ok": C("ok", "torch", "PyTorch", ""),
    # bnb
    "bnb-missing": C("warning", "bnb", "bitsandbytes is not installed: no 4-bit QLoRA",
                     "QLoRA's 4-bit and 8-bit layers and the paged 8-bit optimizers come from bitsandbytes."),
    "bnb-no-gpu-binary": C("error", "bnb", "bitsandbytes loaded no CUDA library",
                           "bitsandbytes fell back to its CPU library (or none), so 4-bit training on the GPU fails "
                           "with \"compiled without GPU support\" or an undefined symbol."),
    "bnb-too-old": C("error", "bnb", "This bitsandbytes cannot work here",
                     "bitsandbytes ships native libraries per CUDA version and GPU architecture; older releases lack "
                     "Windows wheels (< 0.43), Blackwell kernels (< 0.45.3) or builds for newer CUDA."),
    "bnb-import-error": C("error", "bnb", "bitsandbytes fails to import", ""),
    "bnb-quant-failed": C("error", "bnb", "bitsandbytes 4-bit quantization failed on the GPU", ""),
    "bnb-ok": C("ok", "bnb", "bitsandbytes", ""),
    # platform
    "win-libuv": C("warning", "platform", "torch.distributed on Windows: libuv is not built in",
                   "PyTorch >= 2.4 on Windows defaults TCPStore to libuv, which Windows wheels lack: torchrun and "
                   "accelerate fail with \"use_libuv was requested but PyTorch was build without libuv support\"."),
    "win-no-nccl": C("warning", "platform", "Windows has no NCCL: multi-GPU needs gloo or WSL2",
                     "NCCL is Linux-only. On Windows use the gloo backend, a single GPU, or WSL2."),
    "win-triton": C("warning", "platform", "Triton is Linux-only: install triton-windows",
                    "torch.compile and some kernels (Unsloth, Liger) need Triton; on Windows use the triton-windows "
                    "package."),
    "win-pagefile-small": C("error", "platform", "Windows ran out of virtual memory: the paging file is too small",
                            "WinError 1455 (\"The paging file is too small for this operation to complete\") is "
                            "Windows refusing to commit more virtual memory, not a missing file: every Python process "
                            "that imports torch maps its CUDA DLLs (cuBLAS, cuDNN: several GB of commit each), and "
                            "each DataLoader worker is such a process. When RAM plus the page file cannot back them "
                            "all, loading the next DLL fails. Let Windows manage the page file (or make it larger) "
                            "and start fewer DataLoader workers.",
                            "https://learn.microsoft.com/en-us/troubleshoot/windows-client/performance/"
                            "how-to-determine-the-appropriate-page-file-size-for-64-bit-versions-of-windows"),
    "win-symlinks": C("warning", "platform", "This Windows user cannot create symlinks: the HF cache duplicates files",
                      "huggingface_hub's cache uses symlinks; without Developer Mode (or admin) it copies files "
                      "instead, using more disk."),
    "win-long-paths": C("warning", "platform", "Windows long paths are disabled",
                        "Paths over 260 characters fail (pip installs into deep venvs, HF cache paths)."),
    "platform-ok": C("ok", "platform", "Platform", ""),
    # hf
    "hf-disk-low": C("warning", "hf", "Little free disk for models",
                     "A 7B model is ~15 GB in 16-bit safetensors; checkpoints and merged exports need more."),
    "hf-endpoint": C("info", "hf", "Hugging Face mirror in use", ""),
    "hf-offline": C("info", "hf", "HF_HUB_OFFLINE is set: no downloads", ""),
    "hf-unreachable": C("warning", "hf", "The Hugging Face Hub (or its mirror) does not answer",
                        "tunedoc asked the endpoint downloads use for one small page and got no answer within a "
                        "few seconds: searching and downloading models will fail the same way. Where huggingface.co "
                        "is blocked or slow (mainland China, some companies and universities), a mirror such as "
                        "https://hf-mirror.com serves the same repositories, and ModelScope hosts most open models "
                        "(Qwen, DeepSeek, Llama, GLM) under the same names. A model already on disk needs no "
                        "network: give its folder to --model. The kind of failure says where it stops: a name that "
                        "does not resolve is DNS (no network, or a DNS that blocks the host); refused is nothing "
                        "listening (a wrong port, a local proxy that is down); reset is usually a firewall cutting "
                        "the TLS connection; a TLS failure is often a company proxy whose certificate Python does "
                        "not trust; a timeout is a firewall dropping packets, or no route.",
                        "https://hf-mirror.com"),
    "hf-mirror-only": C("info", "hf", "huggingface.co does not answer, the mirror does",
                        "HF_ENDPOINT points downloads at a mirror that answers, so models download from there; "
                        "huggingface.co itself does not answer from this machine. Links in model cards and "
                        "libraries that ignore HF_ENDPOINT will not work here."),
    "hf-ok": C("ok", "hf", "Hugging Face", ""),
}


def make(id: str, title: str | None = None, detail: str | None = None, evidence: list[str] | None = None,
         fixes: list | None = None, severity: str | None = None):
    """A Finding for catalog id `id`, with the catalog's severity, area and explanation as defaults."""
    from tunedoc.doctor.findings import Finding

    e = CATALOG[id]
    d = e.detail if not detail else f"{detail} {e.detail}".strip()
    return Finding(id=id, severity=severity or e.severity, area=e.area, title=title or e.title,
                   detail=d or e.detail, evidence=list(evidence or []), fixes=list(fixes or []))
