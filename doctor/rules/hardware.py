"""Rules for the driver, the GPUs and the CUDA toolkit."""

from __future__ import annotations

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import Facts
from tunedoc.doctor.findings import Fix
from tunedoc.doctor.fixes import driver_fix, set_env, shell_of
from tunedoc.doctor.rules.catalog import make


def gpu_summary(facts: Facts) -> str | None:
    if not facts.gpus:
        return None
    names = {}
    for g in facts.gpus:
        key = (g.name or "NVIDIA GPU", round((g.memory_total_mb or 0) / 1024))
        names[key] = names.get(key, 0) + 1
    parts = [f"{n} x {name}" if n > 1 else name for (name, _), n in names.items()]
    mem = [f"{gb} GB" for (_, gb), _ in names.items() if gb]
    return ", ".join(f"{p} ({m})" for p, m in zip(parts, mem)) if len(mem) == len(parts) else ", ".join(parts)


def _gpu_expected(facts: Facts) -> bool | None:
    """Is there an NVIDIA GPU that should be usable? None when we cannot tell."""
    if facts.gpus:
        return True
    if facts.platform.pci_nvidia_devices:
        return True
    if facts.platform.pci_nvidia_devices == 0:
        return False
    return None  # the PCI bus was not read (Windows, WSL2, some containers) or the report did not say


def driver_rules(facts: Facts):
    d, p = facts.driver, facts.platform
    out = []
    smi_err = d.nvidia_smi_error or ""
    if d.nvml_error == "lib_rm_mismatch" or "version mismatch" in smi_err.lower():
        ev = [x for x in (d.nvml_error_text and f"NVML: {d.nvml_error_text}", smi_err and f"nvidia-smi: {smi_err}",
                          d.kernel_module_version and f"kernel module: {d.kernel_module_version}") if x]
        out.append(make("driver-library-mismatch", evidence=ev, fixes=[Fix(
            title="Reboot so the kernel module matches the installed driver libraries (or reload the module)",
            commands=["cat /proc/driver/nvidia/version", "sudo reboot"], shell="bash")]))
        return out
    if d.nvml_error == "driver_not_loaded" or "couldn't communicate with the nvidia driver" in smi_err.lower():
        ev = [x for x in (d.nvml_error_text and f"NVML: {d.nvml_error_text}", smi_err and f"nvidia-smi: {smi_err}") if x]
        out.append(make("driver-not-loaded", evidence=ev, fixes=[Fix(
            title="Check Secure Boot and rebuild the driver's kernel module for the running kernel",
            commands=["mokutil --sb-state", "dkms status", "sudo dkms autoinstall", "sudo modprobe nvidia",
                      "nvidia-smi"], shell="bash",
            url="https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/")]))
        return out
    if p.is_wsl and p.wsl_linux_driver:
        out.append(make("wsl-linux-driver", evidence=[f"found inside WSL: {p.wsl_linux_driver}"], fixes=[Fix(
            title="Remove the Linux driver from WSL; keep only the Windows driver (and a cuda-toolkit-X-Y package if "
                  "you need nvcc)",
            commands=["sudo apt-get remove --purge '^nvidia-driver-.*' '^libnvidia-.*'", "sudo apt-get autoremove"],
            shell="bash", url="https://docs.nvidia.com/cuda/wsl-user-guide/index.html")]))
    if p.is_wsl and p.wsl_lib_dir is not None and not p.wsl_libcuda:
        out.append(make("wsl-libcuda-path", evidence=["/usr/lib/wsl/lib/libcuda.so* not found"], fixes=[Fix(
            title="Update the Windows NVIDIA driver (it provides /usr/lib/wsl/lib), then restart WSL from Windows",
            commands=["wsl --shutdown"], shell="powershell", url="https://docs.nvidia.com/cuda/wsl-user-guide/index.html"),
            Fix(title="If libcuda is there but not found, put the WSL library dir on the loader path",
                commands=["export LD_LIBRARY_PATH=/usr/lib/wsl/lib:$LD_LIBRARY_PATH"], shell="bash", applicable=False)]))
    if d.present is False and not d.version:
        expected = _gpu_expected(facts)
        if expected is False:
            return out  # the gpu area says "no GPU"; no driver is expected
        # an NVIDIA device seen on the PCI bus without a driver is an error; where the bus cannot be read (Windows,
        # WSL, some containers) the GPU may simply not exist, so it is a warning that says both ways forward
        unsure = {} if expected else dict(severity="warning")
        if p.in_container:
            out.append(make("container-no-gpu", evidence=_driver_evidence(facts), **unsure, fixes=[Fix(
                title="Start the container with GPU access (NVIDIA Container Toolkit on the host)",
                commands=["docker run --gpus all --env NVIDIA_DRIVER_CAPABILITIES=compute,utility ..."], shell="bash",
                url="https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html")]))
        elif expected or p.is_wsl or p.system == "Windows":
            title = None if expected else ("No NVIDIA driver found: if this machine has an NVIDIA GPU, install the "
                                           "driver; without one, training runs on the CPU (demo and tiny models only)")
            out.append(make("no-driver", title=title, evidence=_driver_evidence(facts), **unsure,
                            fixes=[driver_fix(facts, K.min_driver("12.8", p.system or "Linux"),
                                              "Driver 570+ supports CUDA 12.8 (every current GPU incl. RTX 50).")]))
        return out
    if d.version:
        title = f"NVIDIA driver {d.version}" + (f", supports CUDA up to {d.cuda_version}" if d.cuda_version else "")
        out.append(make("driver-ok", title=title, evidence=[f"source: {d.source or 'report'}"]))
    return out


def _driver_evidence(facts: Facts) -> list[str]:
    d, p = facts.driver, facts.platform
    ev = []
    if d.nvml_error_text:
        ev.append(f"NVML: {d.nvml_error_text}")
    ev.append("nvidia-smi: " + (d.nvidia_smi_path or "not found"))
    if p.pci_nvidia_devices:
        ev.append(f"{p.pci_nvidia_devices} NVIDIA device(s) on the PCI bus")
    if p.in_container:
        ev.append(f"running in a container ({p.container_kind or 'unknown kind'})")
    return ev


def gpu_rules(facts: Facts):
    out = []
    p = facts.platform
    if not facts.gpus:
        if _gpu_expected(facts) is False and facts.driver.present is not True:
            out.append(make("no-gpu", title="No NVIDIA GPU: training runs on the CPU (demo and tiny models only)",
                            evidence=[f"{p.pci_nvidia_devices} NVIDIA display devices on the PCI bus",
                                      f"NVML: {facts.driver.nvml_error_text or 'not available'}"],
                            fixes=[Fix(title="Try the built-in CPU demo: a tiny model learns its name in minutes",
                                       commands=["tunedoc demo"], shell=shell_of(facts))]))
        return out
    env = facts.env.vars
    for g in facts.gpus:
        if g.mig_mode and not str(env.get("CUDA_VISIBLE_DEVICES", "")).startswith("MIG-"):
            uuid = g.mig_devices[0] if g.mig_devices else "MIG-<uuid from nvidia-smi -L>"
            out.append(make("mig-device-selection", title=f"MIG is enabled on GPU {g.index}: select one instance",
                            evidence=[f"GPU {g.index} {g.name}: MIG enabled", "CUDA_VISIBLE_DEVICES="
                                      + env.get("CUDA_VISIBLE_DEVICES", "(unset)")],
                            fixes=[Fix(title="Run on one MIG instance", commands=["nvidia-smi -L",
                                       set_env(facts, "CUDA_VISIBLE_DEVICES", uuid)], shell=shell_of(facts),
                                       applicable=False)]))
    # several GPUs (device order, mixed models, peer access, links): rules/multigpu.py
    ccs = [g.compute_capability for g in facts.gpus if g.compute_capability]
    old = [g for g in facts.gpus if g.compute_capability and float(g.compute_capability) < 8.0]
    if old:
        g = old[0]
        fam = (K.family_of(g.compute_capability) or {}).get("family", "")
        out.append(make("bf16-unsupported", title=f"{g.name} ({fam}, sm_{g.compute_capability.replace('.', '')}) "
                        "has no bf16: train in fp16",
                        evidence=[f"GPU {g.index} {g.name}: compute capability {g.compute_capability}"],
                        fixes=[Fix(title="Use fp16 (precision=auto picks it) and sdpa attention",
                                   commands=["tunedoc train ... --set precision=fp16"], shell=shell_of(facts))]))
    pk = facts.python.packages
    if "flash-attn" in pk and ccs:
        bad = [c for c in ccs if not (K.family_of(c) or {}).get("fa2")]
        if bad or (p.system == "Windows"):
            why = f"compute capability {bad[0]}" if bad else "Windows (no official wheels)"
            out.append(make("flash-attn-unsupported", evidence=[f"flash-attn {pk['flash-attn']} installed", why],
                            fixes=[Fix(title="Use PyTorch's sdpa attention instead (tunedoc's default)",
                                       commands=[], shell=shell_of(facts))]))
    summary = gpu_summary(facts)
    cc_txt = ", ".join(sorted({f"sm_{c.replace('.', '')}" for c in ccs}))
    fams = sorted({(K.family_of(c) or {}).get("family", "?") for c in ccs})
    out.append(make("gpu-ok", title=f"{summary}" + (f" — {', '.join(fams)} ({cc_txt})" if ccs else ""),
                    evidence=[f"GPU {g.index}: {g.name}, {g.memory_total_mb} MiB total, {g.memory_free_mb} MiB free"
                              for g in facts.gpus]))
    return out


def cuda_rules(facts: Facts):
    t = facts.toolkit
    out = []
    if t.nvcc_path is None and t.nvcc_version is None:
        if facts.probes.get("toolkit") or facts.origin == "report" and t.libcudart:
            out.append(make("nvcc-missing", evidence=["nvcc not on PATH, CUDA_HOME or CUDA_PATH"]))
        return out
    tv = facts.torch.cuda
    if t.nvcc_version and tv and K.vkey(t.nvcc_version)[:1] != K.vkey(tv)[:1]:
        builds = [p for p in ("deepspeed", "flash-attn", "xformers", "apex") if p in facts.python.packages]
        out.append(make("nvcc-mismatch",
                        title=f"nvcc is CUDA {t.nvcc_version}, PyTorch is built with CUDA {tv}",
                        severity="warning" if builds else "info",
                        evidence=[f"nvcc {t.nvcc_version} at {t.nvcc_path}", f"torch.version.cuda = {tv}"]
                        + [f"{b} installed (may compile CUDA code)" for b in builds],
                        fixes=[Fix(title=f"Only when building extensions: install CUDA toolkit {tv} and point "
                                         f"CUDA_HOME at it", commands=[set_env(facts, "CUDA_HOME", f"/usr/local/cuda-{tv}")]
                                   if shell_of(facts) == "bash" else [], shell=shell_of(facts),
                                   url="https://developer.nvidia.com/cuda-toolkit-archive")]))
    if t.nvcc_version:
        out.append(make("cuda-ok", title=f"CUDA toolkit {t.nvcc_version} (nvcc)"
                        + ("; PyTorch uses its own bundled CUDA runtime" if tv else ""),
                        evidence=[f"nvcc: {t.nvcc_path}"] + ([f"CUDA_HOME={t.cuda_home}"] if t.cuda_home else [])))
    return out


RULES = [driver_rules, gpu_rules, cuda_rules]
