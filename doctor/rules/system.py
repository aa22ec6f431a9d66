"""Rules for the platform (Windows, WSL2, containers) and the Hugging Face cache."""

from __future__ import annotations

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import Facts, Reach
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
        title += f", in a {p.container_kind} container" if p.container_kind else ", in a container"
    known = " ".join(x for x in (p.system, p.release) if x)  # a pasted report seldom gives the kernel release
    out.append(make("platform-ok", title=f"{title}, {p.machine or ''}".strip(", "), evidence=[known] if known else []))
    return out


def hf_rules(facts: Facts):
    h, out = facts.hf, []
    if h.hub_cache is None and h.endpoint is None and h.reach is None:
        return out
    reach = reach_findings(facts)
    out += reach
    if facts.env.vars.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        out.append(make("hf-offline", evidence=["HF_HUB_OFFLINE=" + facts.env.vars["HF_HUB_OFFLINE"]]
                        + (["the Hub, mirror and ModelScope were not contacted"] if h.reach_skipped else [])))
    if h.endpoint and h.endpoint.rstrip("/") != "https://huggingface.co":
        mirror = _role(h, "mirror")
        answers = ", which answers" if mirror and mirror.ok else ""
        out.append(make("hf-endpoint", title=f"Downloads go through {h.endpoint} (HF_ENDPOINT){answers}",
                        evidence=[f"HF_ENDPOINT={h.endpoint}"] + ([reach_line(mirror)] if mirror else [])))
    if h.disk_free_bytes is not None and h.disk_free_bytes < 20 * GB:
        out.append(make("hf-disk-low", title=f"Only {h.disk_free_bytes / GB:.1f} GB free for models in {h.hub_cache}",
                        evidence=[f"free {h.disk_free_bytes / GB:.1f} GB of {(h.disk_total_bytes or 0) / GB:.0f} GB",
                                  f"cache uses {(h.cache_bytes or 0) / GB:.1f} GB"],
                        fixes=[Fix(title="List and remove cached models you no longer need",
                                   commands=["tunedoc models", "tunedoc models rm OWNER/NAME"], shell=shell_of(facts)),
                               Fix(title="Or put the cache on a bigger disk",
                                   commands=[set_env(facts, "HF_HOME", "/path/on/bigger/disk/huggingface")],
                                   shell=shell_of(facts))]))
    if h.hub_cache is None and h.endpoint is None:
        return out
    free = f"{h.disk_free_bytes / GB:.0f} GB free" if h.disk_free_bytes is not None else "free space unknown"
    token = "token set" if h.token_present else "no token (needed for gated models: tunedoc login)"
    hub = _role(h, "hub")
    answers = "; huggingface.co answers" if hub and hub.ok and not _role(h, "mirror") else ""
    evidence = [f"endpoint {h.endpoint}", f"cache size {(h.cache_bytes or 0) / GB:.1f} GB"]
    evidence += [reach_line(r) for r in h.reach or []]
    if h.reach_skipped:
        evidence.append(f"model sources not contacted ({h.reach_skipped})")
    out.append(make("hf-ok", title=f"Model cache {h.hub_cache} ({free}); {token}{answers}", evidence=evidence))
    return out


# --- can the model sources be reached (facts.hf.reach, from probes/network.py) --------------------------------

KIND_WORDS = {
    "dns": "the name does not resolve (DNS)",
    "timeout": "no answer (timed out)",
    "refused": "connection refused",
    "reset": "the connection was reset (often a firewall cutting TLS)",
    "tls": "the TLS handshake failed (a proxy or firewall certificate?)",
    "proxy": "the proxy failed",
    "http": "a server error",
    "other": "the request failed",
}
SHORT = {"dns": "DNS lookup failed", "timeout": "timed out", "refused": "connection refused",
         "reset": "connection reset", "tls": "TLS handshake failed", "proxy": "the proxy failed",
         "http": "server error", "other": "request failed"}
MIRROR = "https://hf-mirror.com"


def _role(h, role: str) -> Reach | None:
    return next((r for r in h.reach or [] if r.role == role), None)


def describe(r: Reach) -> str:
    """'answers (HTTP 200, 85 ms)' or 'does not answer: the name does not resolve (DNS)'."""
    if r.ok:
        return f"answers (HTTP {r.status}, {r.latency_ms} ms)"
    if r.error == "http":
        return f"answers with HTTP {r.status} (a server error)"
    return f"does not answer: {KIND_WORDS.get(r.error or 'other', r.error or 'failed')}"


def reach_line(r: Reach) -> str:
    """One evidence line: 'https://hf-mirror.com (mirror): answers (HTTP 200, 85 ms)', with the error's text."""
    label = {"hub": "Hub", "mirror": "HF_ENDPOINT mirror", "modelscope": "ModelScope"}.get(r.role, r.role)
    line = f"{r.endpoint} ({label}): {describe(r)}"
    if not r.ok and r.detail and r.error != "http":
        line += f" — {r.detail}"
    return line


def _name(r: Reach) -> str:
    return "huggingface.co" if r.role == "hub" else (f"the mirror {r.endpoint}" if r.role == "mirror" else r.endpoint)


def reach_findings(facts: Facts):
    """hf-unreachable (warning) when the endpoint downloads use does not answer, with the ways out for this shell;
    hf-mirror-only (info) when huggingface.co does not answer but the configured mirror does. Nothing when the
    reachability is unknown (a pasted report that does not say, --offline, HF_HUB_OFFLINE)."""
    h = facts.hf
    hub, mirror, ms = _role(h, "hub"), _role(h, "mirror"), _role(h, "modelscope")
    configured = mirror or hub
    if configured is None:
        return []
    evidence = [reach_line(r) for r in h.reach or []]
    if h.proxy:
        evidence.append(f"through the proxy {h.proxy} (HTTPS_PROXY/HTTP_PROXY)")
    if configured.ok:
        if mirror and hub and not hub.ok:
            return [make("hf-mirror-only", title=f"huggingface.co does not answer; the mirror {mirror.endpoint} does, "
                                                 f"and downloads go through it", evidence=evidence)]
        return []
    sh = shell_of(facts)
    folder = "/path/to/model-folder" if sh == "bash" else "C:\\models\\model-folder"
    fixes = []
    if mirror and hub and hub.ok:
        title = f"The mirror {mirror.endpoint} (HF_ENDPOINT) does not answer, huggingface.co does"
        fixes.append(Fix(title="Download from huggingface.co again instead of the mirror",
                         commands=[set_env(facts, "HF_ENDPOINT", "https://huggingface.co")], shell=sh,
                         applicable=True))
    else:
        why = SHORT.get(configured.error or "other", "no answer")
        if mirror:
            title = f"Neither {_name(mirror)} (HF_ENDPOINT) nor huggingface.co answers ({why})"
        else:
            title = f"huggingface.co does not answer ({why})"
        if configured.endpoint.rstrip("/") != MIRROR:
            fixes.append(Fix(title=f"Download through the {MIRROR} mirror (the same repositories)",
                             commands=[set_env(facts, "HF_ENDPOINT", MIRROR)], shell=sh,
                             url=MIRROR, applicable=True))
    if ms is not None:
        state = "ModelScope answers from here" if ms.ok else "ModelScope did not answer either"
        if "modelscope" not in facts.python.packages:
            state += "; needs pip install 'tunedoc[modelscope]'"
        fixes.append(Fix(title=f"Or get the model from ModelScope ({state})",
                         commands=["tunedoc models search qwen --source modelscope",
                                   "tunedoc download Qwen/Qwen2.5-0.5B-Instruct --source modelscope"], shell=sh,
                         url="https://www.modelscope.cn/models"))
        if not (mirror and hub and hub.ok):
            title += "; ModelScope does" if ms.ok else ": model downloads will fail"
    fixes.append(Fix(title="Or train a model you already have on disk: give its folder to --model",
                     commands=[f"tunedoc train --model {folder} --data data.jsonl"], shell=sh))
    if not any(r.ok for r in h.reach or []):  # no source answers: the network (or its proxy) first
        fixes.insert(0, Fix(title="Nothing answers: check the network connection, and the proxy if this network "
                                  "needs one (tunedoc, pip and huggingface_hub use HTTPS_PROXY / HTTP_PROXY)",
                            commands=[set_env(facts, "HTTPS_PROXY", "http://proxy.example:8080")], shell=sh))
    return [make("hf-unreachable", title=title, evidence=evidence, fixes=fixes)]


RULES = [platform_rules, hf_rules]
