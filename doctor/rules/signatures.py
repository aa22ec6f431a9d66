"""Error signatures from pasted logs and tracebacks -> findings, with fixes as exact as the facts allow."""

from __future__ import annotations

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import Facts, Signature
from tunedoc.doctor.findings import Finding, Fix
from tunedoc.doctor.fixes import driver_fix, pip, set_env, shell_of, torch_choice, torch_install_fix
from tunedoc.doctor.rules.catalog import CATALOG, make


def from_signatures(facts: Facts, found: dict[str, Finding]) -> list[Finding]:
    out: list[Finding] = []
    by_id: dict[str, list[Signature]] = {}
    for s in facts.signatures:
        if s.id in CATALOG:
            by_id.setdefault(s.id, []).append(s)
    for sid, sigs in by_id.items():
        evidence = [f"{s.source + ': ' if s.source else ''}{s.line.strip()[:300]}" for s in sigs[:5]]
        data: dict = {}
        for s in sigs:
            data.update(s.data)
        if sid in found:
            out.append(Finding(id=sid, severity=found[sid].severity, area=found[sid].area, title=found[sid].title,
                               evidence=evidence))
            continue
        builder = BUILDERS.get(sid)
        f = builder(facts, data, evidence) if builder else make(sid, evidence=evidence)
        out.append(f)
    return out


def _cc_from(facts: Facts, data: dict) -> str | None:
    cc = data.get("capability")
    if cc:
        return cc
    ccs = [g.compute_capability for g in facts.gpus or [] if g.compute_capability]
    return ccs[-1] if ccs else None


def _arch(facts, data, ev):
    cc = _cc_from(facts, data)
    choice = torch_choice(facts, cc)
    fixes = []
    if choice.variant:
        fx = torch_install_fix(facts, choice.version, choice.variant)
        fx.title += f" — {choice.why}"
        fixes.append(fx)
        if choice.driver_needed:
            fixes.append(driver_fix(facts, choice.driver_needed, f"{choice.variant} needs it."))
    title = "This PyTorch build has no kernels for this GPU" + (f" (sm_{cc.replace('.', '')})" if cc else "")
    return make("torch-arch-unsupported", title=title, evidence=ev, fixes=fixes)


def _cpu(facts, data, ev):
    choice = torch_choice(facts, _cc_from(facts, data))
    return make("torch-cpu-build", evidence=ev,
                fixes=[torch_install_fix(facts, choice.version, choice.variant or "cu128")])


def _driver_old(facts, data, ev):
    found = data.get("found")  # "11.4" from "found version 11040"
    title = "The NVIDIA driver is too old for this PyTorch build" + (
        f" (it supports CUDA {found})" if found else "")
    tv = facts.torch.cuda or data.get("needed") or facts.toolkit.nvcc_version  # no torch: the app's own CUDA
    need = K.min_driver(tv, facts.platform.system or "Linux") if tv else K.min_driver("12.8", facts.platform.system or "Linux")
    if facts.platform.in_container:
        why = ("The image's CUDA is newer than the host driver (error 804: forward compatibility works only on "
               "data-centre GPUs)." if data.get("forward_compat") else "A container uses the host's driver.")
        fixes = [Fix(title=f"Update the driver on the host (not in the image) to {need} or newer. {why}",
                     commands=[], shell="bash", url="https://docs.nvidia.com/deploy/cuda-compatibility/"),
                 Fix(title="Or use an image built for an older CUDA that the host driver supports "
                           "(nvidia-smi on the host shows the highest)", commands=["nvidia-smi"], shell="bash")]
    else:
        fixes = [driver_fix(facts, need, "")]
        if data.get("e803"):
            fixes.append(Fix(title="Error 803 right after a driver upgrade: reboot; a CUDA compat package "
                                   "(cuda-compat) shadowing the driver's libcuda: remove it", commands=["sudo reboot"],
                             shell="bash"))
    if found:
        cc = _cc_from(facts, data)
        choice = K.best_torch_install(cc, found, facts.platform.system or "Linux")
        if choice.variant and not choice.driver_needed:
            fx = torch_install_fix(facts, choice.version, choice.variant,
                                   title="Or keep this driver and install a PyTorch that runs on it")
            fx.title += f" — {choice.why}"
            fixes.append(fx)
    return make("driver-too-old", title=title, evidence=ev, fixes=fixes)


def _oom(facts, data, ev):
    parts = []
    if data.get("tried_gib") is not None:
        parts.append(f"tried to allocate {data['tried_gib']} GiB")
    if data.get("total_gib") is not None:
        parts.append(f"the GPU has {data['total_gib']} GiB in total")
    if data.get("free_gib") is not None:
        parts.append(f"{data['free_gib']} GiB free")
    detail = ("The run " + ", ".join(parts) + ".") if parts else ""
    sh = shell_of(facts)
    return make("cuda-oom", detail=detail, evidence=ev, fixes=[
        Fix(title="See which profiles fit this GPU, and by how much", commands=["tunedoc fit --model <model>"],
            shell=sh),
        Fix(title="Trade speed for memory: micro-batch 1 with more accumulation, checkpointing, shorter cutoff",
            commands=["tunedoc train ... --set micro_batch=1 --set grad_accum=16 --set grad_ckpt=true "
                      "--set cutoff_len=1024 --set optimizer=paged-adamw-8bit"], shell=sh),
        Fix(title="Reduce fragmentation", commands=[set_env(facts, "PYTORCH_CUDA_ALLOC_CONF",
                                                            "expandable_segments:True")], shell=sh, applicable=True),
    ])


def _libuv(facts, data, ev):
    return make("win-libuv", evidence=ev, fixes=[
        Fix(title="Disable libuv for torch.distributed's TCPStore before launching",
            commands=[set_env(facts, "USE_LIBUV", "0")], shell=shell_of(facts) if facts.platform.system else "powershell",
            applicable=True),
        Fix(title="Or train on a single GPU without torchrun / accelerate launch, or use WSL2", commands=[],
            shell="powershell")])


def _nccl(facts, data, ev):
    return make("win-no-nccl", evidence=ev, fixes=[Fix(
        title="Use the gloo backend (accelerate config: distributed backend gloo), a single GPU, or WSL2",
        commands=[set_env(facts, "CUDA_VISIBLE_DEVICES", "0")], shell=shell_of(facts), applicable=True)])


def _no_nccl(facts, data, ev):
    choice = torch_choice(facts, _cc_from(facts, data))
    return make("torch-no-nccl", evidence=ev, fixes=[torch_install_fix(
        facts, choice.version, choice.variant or "cu128",
        title=f"Reinstall PyTorch from its CUDA index (its wheels bundle NCCL): torch {choice.version or ''} "
              f"{choice.variant or 'cu128'}".rstrip())])


def _triton(facts, data, ev):
    return make("win-triton", evidence=ev, fixes=[Fix(title="Install triton-windows",
                                                      commands=[pip(facts, "install", "triton-windows")],
                                                      shell=shell_of(facts), applicable=True)])


def _pagefile(facts, data, ev):
    return make("win-pagefile-small", evidence=ev, fixes=[
        Fix(title="Let Windows manage the page file size (System > About > Advanced system settings > Performance "
                  "Settings > Advanced > Virtual memory > Change: \"Automatically manage\", or a custom size of "
                  "at least 1.5x your RAM on the system drive), then restart Windows",
            commands=["SystemPropertiesPerformance.exe"], shell="powershell"),
        Fix(title="Start fewer DataLoader workers: each one loads torch's CUDA DLLs again; set num_workers to 0-2 "
                  "in the program's config or training script (tunedoc's own trainer builds batches in-process)",
            commands=[], shell=shell_of(facts)),
        Fix(title="Close other programs that hold a lot of memory while training", commands=[], shell="powershell"),
    ])


def _bnb_gpu(facts, data, ev):
    return make("bnb-no-gpu-binary", evidence=ev, fixes=[Fix(
        title="Upgrade bitsandbytes to a release with a CUDA library for this PyTorch",
        commands=[pip(facts, "install", "--upgrade", "bitsandbytes")], shell=shell_of(facts), applicable=True)])


def _bnb_old(facts, data, ev):
    return make("bnb-too-old", evidence=ev, fixes=[Fix(
        title="Upgrade bitsandbytes", commands=[pip(facts, "install", "--upgrade", "bitsandbytes")],
        shell=shell_of(facts), applicable=True)])


def _dll(facts, data, ev):
    fixes = []
    text = " ".join(ev).lower()
    if "fbgemm.dll" in text:
        fixes.append(Fix(title="torch 2.4.0 on Windows misses libomp140: upgrade torch",
                         commands=[pip(facts, "install", "--upgrade", "torch>=2.4.1")], shell=shell_of(facts),
                         applicable=True))
    fixes.append(Fix(title="Install the latest Microsoft Visual C++ Redistributable (x64)",
                     commands=["winget install --id Microsoft.VCRedist.2015+.x64"], shell="powershell",
                     url="https://aka.ms/vc14/vc_redist.x64.exe"))
    return make("torch-import-dll", evidence=ev, fixes=fixes)


def _wsl_libcuda(facts, data, ev):
    return make("wsl-libcuda-path", evidence=ev, fixes=[Fix(
        title="Put the WSL driver library dir on the loader path",
        commands=["export LD_LIBRARY_PATH=/usr/lib/wsl/lib:$LD_LIBRARY_PATH"], shell="bash")])


def _mismatch(facts, data, ev):
    return make("driver-library-mismatch", evidence=ev, fixes=[Fix(
        title="Reboot so the kernel module matches the driver libraries", commands=["sudo reboot"], shell="bash")])


def _not_loaded(facts, data, ev):
    return make("driver-not-loaded", evidence=ev, fixes=[Fix(
        title="Check Secure Boot and rebuild the kernel module", commands=["mokutil --sb-state", "dkms status",
                                                                          "sudo dkms autoinstall", "sudo reboot"],
        shell="bash")])


def _container(facts, data, ev):
    return make("container-no-gpu", evidence=ev, fixes=container_gpu_fixes())


def container_gpu_fixes() -> list[Fix]:
    """How a container gets the host's GPU: docker run, compose, the toolkit (the fix for "no driver" in a container)."""
    toolkit = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
    return [Fix(title="Start the container with GPU access (docker run)", commands=["docker run --gpus all ..."],
                shell="bash", url=toolkit),
            Fix(title="docker compose: reserve the GPU for the service (deploy.resources.reservations.devices)",
                commands=["services:", "  app:", "    deploy:", "      resources:", "        reservations:",
                          "          devices:", "            - driver: nvidia", "              count: all",
                          "              capabilities: [gpu]"], shell="yaml",
                url="https://docs.docker.com/compose/how-tos/gpu-support/"),
            Fix(title="On the host: install the NVIDIA Container Toolkit and register it with docker",
                commands=["sudo apt-get install -y nvidia-container-toolkit",
                          "sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"],
                shell="bash", url=toolkit)]


def _nvml_lost(facts, data, ev):
    return make("container-nvml-lost", evidence=ev, fixes=[
        Fix(title="Restart the container: it gets the device permission back", commands=["docker restart <container>"],
            shell="bash"),
        Fix(title="For good: the cgroupfs driver in /etc/docker/daemon.json (or the toolkit's device-node symlinks)",
            commands=['"exec-opts": ["native.cgroupdriver=cgroupfs"]', "sudo systemctl restart docker"], shell="bash",
            url="https://github.com/NVIDIA/nvidia-container-toolkit/issues/48")])


def _torchvision(facts, data, ev):
    tv = facts.torch.version
    base = (tv or "").split("+")[0]
    variant = K.variant_of(tv, facts.torch.cuda) if tv else None
    comp = K.torch_companions(base, variant, {"torchvision": ""}) if base else []
    spec = comp[0] if comp else "torchvision"
    args = ["install", "--upgrade", "--force-reinstall", "--no-deps", spec]
    if variant and variant != "cpu" and variant.startswith("cu"):
        args += ["--index-url", f"https://download.pytorch.org/whl/{variant}"]
    title = (f"Install the torchvision built for torch {tv} ({spec})" if comp else
             "Install the torchvision built for the installed torch (torchvision 0.N+15 for torch 2.N)")
    return make("torchvision-mismatch", evidence=ev, fixes=[Fix(title=title, commands=[pip(facts, *args)],
                                                               shell=shell_of(facts), applicable=True)])


def _no_driver(facts, data, ev):
    if facts.platform.in_container or data.get("container"):
        return make("container-no-gpu", evidence=ev, fixes=container_gpu_fixes())
    return make("no-driver", evidence=ev, fixes=[driver_fix(facts, K.min_driver("12.8", facts.platform.system or "Linux"),
                                                            "")])


def _cudnn(facts, data, ev):
    if shell_of(facts) == "bash":
        cmds = ["echo $LD_LIBRARY_PATH", "unset LD_LIBRARY_PATH"]
        title = "Remove old cuDNN/CUDA dirs from LD_LIBRARY_PATH so PyTorch loads the cuDNN it ships"
    else:
        cmds = ["where.exe cudnn*.dll"] if shell_of(facts) == "cmd" else ["Get-Command cudnn*.dll -All"]
        title = "Remove old CUDA/cuDNN bin dirs from PATH so PyTorch loads the cuDNN it ships"
    return make("cudnn-mismatch", evidence=ev, fixes=[Fix(title=title, commands=cmds, shell=shell_of(facts))])


def _abi(facts, data, ev):
    return make("extension-abi-mismatch", evidence=ev, fixes=[Fix(
        title="Rebuild the extension against the installed torch (or install a wheel built for it)",
        commands=[pip(facts, "install", "--force-reinstall", "--no-build-isolation", "--no-cache-dir",
                      data.get("package", "flash-attn"))], shell=shell_of(facts), applicable=True)])


def _flash(facts, data, ev):
    return make("flash-attn-unsupported", evidence=ev, fixes=[Fix(
        title="Use attn_implementation=\"sdpa\" (tunedoc's default) and uninstall flash-attn",
        commands=[pip(facts, "uninstall", "-y", "flash-attn")], shell=shell_of(facts), applicable=True)])


def _bf16(facts, data, ev):
    return make("bf16-unsupported", evidence=ev, fixes=[Fix(
        title="Train in fp16 on this GPU", commands=["tunedoc train ... --set precision=fp16"], shell=shell_of(facts))])


def _deepspeed(facts, data, ev):
    return make("deepspeed-op-build", evidence=ev, fixes=[Fix(
        title="See which ops can build, then prebuild cpu_adam with a toolkit matching torch.version.cuda",
        commands=["ds_report", set_env(facts, "DS_BUILD_CPU_ADAM", "1"),
                  pip(facts, "install", "--force-reinstall", "--no-cache-dir", "deepspeed")],
        shell=shell_of(facts), url="https://www.deepspeed.ai/tutorials/advanced-install/")])


def _nvcc(facts, data, ev):
    return make("nvcc-mismatch", evidence=ev, fixes=[Fix(
        title="Install the CUDA toolkit matching torch.version.cuda and point CUDA_HOME at it",
        commands=[], shell=shell_of(facts), url="https://developer.nvidia.com/cuda-toolkit-archive")])


def _cudart(facts, data, ev):
    choice = torch_choice(facts, _cc_from(facts, data))
    fixes = []
    if choice.variant:
        fixes.append(torch_install_fix(facts, choice.version, choice.variant,
                                       title="Reinstall PyTorch with the CUDA runtime wheels it depends on"))
    fixes.append(Fix(title="Then rebuild or reinstall the extension that wanted " + data.get("lib", "libcudart")
                     + " against this PyTorch", commands=[], shell=shell_of(facts)))
    return make("libcudart-missing", evidence=ev, fixes=fixes)


def _torch_missing(facts, data, ev):
    choice = torch_choice(facts, _cc_from(facts, data))
    fix = torch_install_fix(facts, choice.version, choice.variant or "cu128", title="Install PyTorch")
    fix.title += f" — {choice.why}"
    return make("torch-missing", evidence=ev, fixes=[fix])


def _bnb_missing(facts, data, ev):
    return make("bnb-missing", evidence=ev, fixes=[Fix(
        title="Install bitsandbytes", commands=[pip(facts, "install", "--upgrade", "bitsandbytes")],
        shell=shell_of(facts), applicable=True)])


def _symlinks(facts, data, ev):
    return make("win-symlinks", evidence=ev, fixes=[Fix(
        title="Turn on Developer Mode, or silence the warning",
        commands=["start ms-settings:developers", '$env:HF_HUB_DISABLE_SYMLINKS_WARNING = "1"'], shell="powershell")])


def _long_paths(facts, data, ev):
    return make("win-long-paths", evidence=ev, fixes=[Fix(
        title="Enable Windows long paths (administrator PowerShell)",
        commands=['New-ItemProperty -Path "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\FileSystem" -Name '
                  '"LongPathsEnabled" -Value 1 -PropertyType DWORD -Force'], shell="powershell")])


def _mig(facts, data, ev):
    return make("mig-device-selection", evidence=ev, fixes=[Fix(
        title="Select one MIG instance", commands=["nvidia-smi -L",
                                                   set_env(facts, "CUDA_VISIBLE_DEVICES", "MIG-<uuid>")],
        shell=shell_of(facts))])


def _env_mismatch(facts, data, ev):
    return make("torch-env-mismatch", evidence=ev, fixes=[Fix(
        title="Install with the interpreter that runs your code", commands=[pip(facts, "install", "<package>")],
        shell=shell_of(facts))])


BUILDERS = {
    "torch-arch-unsupported": _arch, "torch-cpu-build": _cpu, "driver-too-old": _driver_old, "cuda-oom": _oom,
    "win-libuv": _libuv, "win-no-nccl": _nccl, "torch-no-nccl": _no_nccl,
    "win-pagefile-small": _pagefile, "win-triton": _triton, "bnb-no-gpu-binary": _bnb_gpu,
    "bnb-too-old": _bnb_old, "torch-import-dll": _dll, "wsl-libcuda-path": _wsl_libcuda,
    "driver-library-mismatch": _mismatch, "driver-not-loaded": _not_loaded, "no-driver": _no_driver,
    "container-no-gpu": _container, "cudnn-mismatch": _cudnn, "extension-abi-mismatch": _abi,
    "flash-attn-unsupported": _flash, "bf16-unsupported": _bf16, "deepspeed-op-build": _deepspeed,
    "nvcc-mismatch": _nvcc, "libcudart-missing": _cudart, "win-symlinks": _symlinks, "win-long-paths": _long_paths,
    "mig-device-selection": _mig, "torch-env-mismatch": _env_mismatch, "torch-missing": _torch_missing,
    "bnb-missing": _bnb_missing, "container-nvml-lost": _nvml_lost, "torchvision-mismatch": _torchvision,
}
