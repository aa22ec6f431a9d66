"""Rules for the platform (Windows, WSL2, containers) and the Hugging Face cache."""

from __future__ import annotations

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import Facts
from tunedoc.doctor.findings import Fix
from tunedoc.doctor.fixes import pip, set_env, shell_of
from tunedoc.doctor.rules.catalog import make

GB = 1024**3


def platform_rules(facts: Facts):
    p, out = facts.platform, []
    if p.system is None:
        return out
    if p.system == "Windows":
        if p.long_paths_enabled is False:
            out.append(make("win-long-paths", evidence=["HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem "
                                                        "LongPathsEnabled = 0"],
                            fixes=[Fix(title="Enable long paths (administrator PowerShell), then open a new terminal",
                                       commands=['New-ItemProperty -Path "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\'
                                                 'FileSystem" -Name "LongPathsEnabled" -Value 1 -PropertyType DWORD '
                                                 '-Force'], shell="powershell",
                                       url="https://learn.microsoft.com/en-us/windows/win32/fileio/maximum-file-path-limitation")]))
        if p.symlinks_supported is False:
            out.append(make("win-symlinks", evidence=["creating a symlink in a temp dir failed"],
                            fixes=[Fix(title="Turn on Developer Mode (Settings > System > For developers), or silence "
                                             "the warning and accept duplicated files",
                                       commands=["start ms-settings:developers",
                                                 set_env(facts, "HF_HUB_DISABLE_SYMLINKS_WARNING", "1")],
                                       shell="powershell")]))
        pk = facts.python.packages
        if "triton" in pk and "triton-windows" not in pk:
            out.append(make("win-triton", evidence=[f"triton {pk['triton']} installed on Windows"],
                            fixes=[Fix(title="Replace triton with triton-windows",
                                       commands=[pip(facts, "uninstall", "-y", "triton"),
                                                 pip(facts, "install", "triton-windows")],
                                       shell=shell_of(facts), applicable=True)]))
        ngpu = len(facts.gpus or []) or (facts.torch.device_count or 0)
        if ngpu > 1:
            if facts.env.vars.get("USE_LIBUV") != "0" and not K.version_lt(facts.torch.version, "2.4"):
                out.append(make("win-libuv", severity="info",
                                title="Multi-GPU on Windows: set USE_LIBUV=0 before torchrun/accelerate "
                                      "(tunedoc train sets it itself)",
                                evidence=[f"{ngpu} GPUs", f"torch {facts.torch.version}", "USE_LIBUV unset"],
                                fixes=[Fix(title="Disable libuv for torch.distributed's TCPStore",
                                           commands=[set_env(facts, "USE_LIBUV", "0")], shell=shell_of(facts),
                                           applicable=True)]))
            if facts.torch.nccl_available is False:
                out.append(make("win-no-nccl", severity="info", evidence=[f"{ngpu} GPUs", "NCCL not available"],
                                fixes=[Fix(title="tunedoc train --gpus uses the gloo backend here (gradients pass "
                                                 "through host memory: slower than NCCL) and sets USE_LIBUV=0 itself",
                                           commands=["tunedoc train --model MODEL --data DATA --gpus all"],
                                           shell=shell_of(facts)),
                                       Fix(title="Or train on one GPU, or use WSL2 (Linux, NCCL) for multi-GPU",
                                           commands=[set_env(facts, "CUDA_VISIBLE_DEVICES", "0")],
                                           shell=shell_of(facts), applicable=True)]))
    title = p.distro or p.system
    if p.is_wsl:
        title = f"WSL2 ({p.distro or 'Linux'})"
    if p.in_container:
        title += f", in a {p.container_kind or ''} container".replace(" ,", ",")
    out.append(make("platform-ok", title=f"{title}, {p.machine or ''}".strip(", "),
                    evidence=[f"{p.system} {p.release}"]))
    return out


def hf_rules(facts: Facts):
    h, out = facts.hf, []
    if h.hub_cache is None and h.endpoint is None:
        return out
    if facts.env.vars.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        out.append(make("hf-offline", evidence=["HF_HUB_OFFLINE=" + facts.env.vars["HF_HUB_OFFLINE"]]))
    if h.endpoint and h.endpoint.rstrip("/") != "https://huggingface.co":
        out.append(make("hf-endpoint", title=f"Downloads go through {h.endpoint} (HF_ENDPOINT)",
                        evidence=[f"HF_ENDPOINT={h.endpoint}"]))
    if h.disk_free_bytes is not None and h.disk_free_bytes < 20 * GB:
        out.append(make("hf-disk-low", title=f"Only {h.disk_free_bytes / GB:.1f} GB free for models in {h.hub_cache}",
                        evidence=[f"free {h.disk_free_bytes / GB:.1f} GB of {(h.disk_total_bytes or 0) / GB:.0f} GB",
                                  f"cache uses {(h.cache_bytes or 0) / GB:.1f} GB"],
                        fixes=[Fix(title="List and remove cached models you no longer need",
                                   commands=["tunedoc models", "tunedoc models rm OWNER/NAME"], shell=shell_of(facts)),
                               Fix(title="Or put the cache on a bigger disk",
                                   commands=[set_env(facts, "HF_HOME", "/path/on/bigger/disk/huggingface")],
                                   shell=shell_of(facts))]))
    free = f"{h.disk_free_bytes / GB:.0f} GB free" if h.disk_free_bytes is not None else "free space unknown"
    token = "token set" if h.token_present else "no token (needed for gated models: tunedoc login)"
    out.append(make("hf-ok", title=f"Model cache {h.hub_cache} ({free}); {token}",
                    evidence=[f"endpoint {h.endpoint}", f"cache size {(h.cache_bytes or 0) / GB:.1f} GB"]))
    return out


RULES = [platform_rules, hf_rules]
