"""Rules for the target Python: PyTorch and bitsandbytes."""

from __future__ import annotations

import os

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import Facts
from tunedoc.doctor.findings import Fix
from tunedoc.doctor.fixes import driver_fix, pip, python_of, shell_of, torch_choice, torch_install_fix
from tunedoc.doctor.rules.catalog import make
from tunedoc.doctor.rules.hardware import _gpu_expected


def _ccs(facts: Facts) -> list[str]:
    ccs = [g.compute_capability for g in facts.gpus or [] if g.compute_capability]
    ccs += [d.get("capability") for d in facts.torch.devices if d.get("capability")]
    return sorted(set(ccs), key=K.vkey)


def _gpu_names(facts: Facts) -> list[str]:
    return [g.name for g in facts.gpus or [] if g.name] or [d.get("name") for d in facts.torch.devices if d.get("name")]


def _best_fix(facts: Facts, title: str | None = None) -> tuple[list[Fix], K.TorchChoice]:
    ccs = _ccs(facts)
    if not ccs and _gpu_expected(facts) is False and not facts.driver.present:
        # no NVIDIA GPU here: the CPU wheel (a CUDA wheel would be GBs of unused libraries)
        choice = K.TorchChoice(None, "cpu", "https://download.pytorch.org/whl/cpu",
                               "no NVIDIA GPU on this machine: the CPU build")
        fix = Fix(title=(title or "Install PyTorch") + " — the CPU build: there is no NVIDIA GPU here",
                  commands=[pip(facts, "install", "--upgrade", "torch", "--index-url", choice.index_url)],
                  shell=shell_of(facts), url="https://pytorch.org/get-started/locally/", applicable=True)
        return [fix], choice
    # the newest GPU decides (RTX 50 needs cu128+); an old one beside it is reported separately
    cc = ccs[-1] if ccs else None
    choice = torch_choice(facts, cc)
    fixes = []
    if choice.variant:
        fixes.append(torch_install_fix(facts, choice.version, choice.variant, title=title))
        fixes[-1].title += f" — {choice.why}"
    if choice.driver_needed and facts.driver.version and K.vkey(facts.driver.version) < K.vkey(choice.driver_needed):
        fixes.insert(0, driver_fix(facts, choice.driver_needed,
                                   f"{choice.variant} needs a driver for CUDA {choice.variant[2:-1]}."
                                   f"{choice.variant[-1]}; this one is {facts.driver.version}."))
    return fixes, choice


def torch_rules(facts: Facts):
    t, out = facts.torch, []
    py = facts.probes.get("python")
    if t.installed is False and (py is None or py.ok):
        fixes, _ = _best_fix(facts, "Install PyTorch")
        if not fixes:
            fixes = [Fix(title="Install PyTorch", commands=[pip(facts, "install", "torch")], shell=shell_of(facts),
                         applicable=True)]
        out.append(make("torch-missing", title=f"PyTorch is not installed in {python_of(facts)}",
                        evidence=[f"target Python: {python_of(facts)}"], fixes=fixes))
        return out
    if t.import_ok is False:
        err = t.import_error or "unknown error"
        ev = [f"import torch: {err}"]
        if t.version:
            ev.append(f"torch {t.version}")
        if t.import_error_kind == "dll":
            fixes = []
            low = err.lower()
            if "fbgemm.dll" in low or (t.version or "").startswith("2.4.0"):
                fixes.append(Fix(title="torch 2.4.0 on Windows misses libomp140: upgrade to 2.4.1 or newer",
                                 commands=[pip(facts, "install", "--upgrade", "torch>=2.4.1")],
                                 shell=shell_of(facts), applicable=True))
            if facts.platform.system == "Windows" or "winerror" in low or ".dll" in low:
                fixes.append(Fix(title="Install the latest Microsoft Visual C++ Redistributable (x64), then retry",
                                 commands=["winget install --id Microsoft.VCRedist.2015+.x64"], shell="powershell",
                                 url="https://aka.ms/vc14/vc_redist.x64.exe"))
            f2, _ = _best_fix(facts, "Reinstall PyTorch cleanly")
            fixes += f2
            out.append(make("torch-import-dll", evidence=ev, fixes=fixes))
        else:
            what = {"segfault": "crashes on import", "timeout": "hangs on import",
                    "module_not_found": "is missing a module it needs"}.get(t.import_error_kind or "", "fails on import")
            f2, _ = _best_fix(facts, "Reinstall PyTorch cleanly")
            out.append(make("torch-import-error", title=f"PyTorch {what}", detail=f"import torch: {err}.",
                            evidence=ev + ([f"probe: {facts.probes['torch'].stderr_tail}"]
                                           if facts.probes.get("torch") and facts.probes["torch"].stderr_tail else []),
                            fixes=f2))
        return out
    if t.import_ok is not True:
        return out
    version = t.version or "(version not given)"
    gpu = _gpu_expected(facts)
    # the user wrote that CUDA is not available to them (a report, not a probe): they have a GPU they mean to use
    said_no_cuda = t.cuda_available is False and "said.cuda_unavailable" in facts.quoted
    if not t.cuda and not t.hip:
        if gpu or facts.driver.present or said_no_cuda:
            fixes, choice = _best_fix(facts)
            has = ", ".join(_gpu_names(facts)) or ("an NVIDIA GPU" if gpu or facts.driver.present else "")
            out.append(make("torch-cpu-build", title=f"PyTorch {version} is a CPU-only build; "
                            + (f"this machine has {has}" if has else "that is why CUDA is not available"),
                            evidence=[f"torch {version}", "torch.version.cuda = None"]
                            + ([f"driver {facts.driver.version} (CUDA {facts.driver.cuda_version})"]
                               if facts.driver.version else [])
                            + ([f"the report: {facts.quoted['said.cuda_unavailable']}"] if said_no_cuda else []),
                            fixes=fixes))
        else:
            out.append(make("torch-ok", title=f"PyTorch {version} (CPU build): fine here, there is no NVIDIA GPU",
                            evidence=[f"torch {version} at {t.file or '?'}"]))
        out += _env_mismatch(facts)
        return out
    # a CUDA build
    variant = K.variant_of(t.version, t.cuda)
    arch = t.arch_list or (K.torch_arch_list(t.version or "", variant or "", facts.platform.system or "Linux")
                           if variant else None)
    arch_bad = []
    if arch:
        for cc in _ccs(facts):
            if not K.arch_supports(arch, cc):
                arch_bad.append(cc)
    elif t.cuda and K.vkey(t.cuda)[:2] < (12, 8):
        # a release older than the knowledge table: no CUDA build before 12.8 has Blackwell (sm_100/sm_120) kernels
        arch_bad = [cc for cc in _ccs(facts) if K.vkey(cc)[:1] >= (10,)]
        arch = [f"CUDA {t.cuda} build: no sm_100/sm_120 (those need CUDA 12.8+)"] if arch_bad else arch
    if arch_bad:
        fixes, choice = _best_fix(facts)
        names = ", ".join(_gpu_names(facts)) or "this GPU"
        cc = arch_bad[-1]
        out.append(make("torch-arch-unsupported",
                        title=f"PyTorch {version} has no kernels for {names} (sm_{cc.replace('.', '')})",
                        evidence=[f"torch {version}: arch list {' '.join(arch)}",
                                  f"GPU compute capability {', '.join(arch_bad)}"], fixes=fixes))
    dv = facts.driver.version
    if dv and t.cuda:
        full = K.min_driver(t.cuda, facts.platform.system or "Linux")
        # before CUDA 11 there is no minor-version compatibility: the release's own driver is the floor
        floor = K.family_min_driver(t.cuda) or (full if K.vkey(t.cuda)[:1] < (11,) else None)
        if floor and K.vkey(dv) < K.vkey(floor):
            fixes, _ = _best_fix(facts)
            fixes.insert(0, driver_fix(facts, full, f"CUDA {t.cuda} builds need a driver >= {floor}."))
            out.append(make("driver-too-old", title=f"Driver {dv} is too old for PyTorch built with CUDA {t.cuda}",
                            evidence=[f"driver {dv} (CUDA {facts.driver.cuda_version or '?'})",
                                      f"torch {version}: CUDA {t.cuda}", f"minimum driver for CUDA "
                                      f"{K.vkey(t.cuda)[0]}.x: {floor}"], fixes=fixes))
        elif facts.driver.cuda_version and K.vkey(facts.driver.cuda_version)[:2] < K.vkey(t.cuda)[:2]:
            out.append(make("driver-too-old", severity="warning",
                            title=f"Driver {dv} supports CUDA {facts.driver.cuda_version}; PyTorch is built with "
                                  f"CUDA {t.cuda} (runs with a limited feature set)",
                            evidence=[f"driver {dv} (CUDA {facts.driver.cuda_version})", f"torch {version}"],
                            fixes=[driver_fix(facts, full, f"Full support for CUDA {t.cuda}.")]))
    if t.cuda_available is False and (gpu or facts.gpus) and not arch_bad:
        out.append(make("torch-cuda-unavailable", evidence=[f"torch {version}", "torch.cuda.is_available() = False"]
                        + [f"CUDA_VISIBLE_DEVICES={facts.env.vars['CUDA_VISIBLE_DEVICES']}"]
                        if "CUDA_VISIBLE_DEVICES" in facts.env.vars else [f"torch {version}"],
                        fixes=[Fix(title="Check that CUDA_VISIBLE_DEVICES does not hide the GPUs and that the driver "
                                         "works (nvidia-smi)", commands=["nvidia-smi"], shell=shell_of(facts))]))
    if t.cuda_op_ok is False:
        out.append(make("torch-cuda-op-failed", title="A tiny CUDA operation failed: " + (t.cuda_op_error or "?"),
                        detail=t.cuda_op_error or "", evidence=[f"torch {version}", f"error: {t.cuda_op_error}"]))
    out += _env_mismatch(facts)
    if not arch_bad and t.cuda_available is not False:
        devs = ", ".join(_gpu_names(facts))
        out.append(make("torch-ok", title=f"PyTorch {version} (CUDA {t.cuda})" + (f" runs on {devs}" if devs else ""),
                        evidence=[f"torch {version} at {t.file or '?'}", f"arch list: {' '.join(arch or [])}"]
                        + ([f"cuDNN {t.cudnn}"] if t.cudnn else [])))
    return out


def _env_mismatch(facts: Facts):
    p = facts.python
    if not p.pip_python or not p.executable:
        return []
    a, b = os.path.normcase(os.path.realpath(p.pip_python)), os.path.normcase(os.path.realpath(p.executable))
    if a == b or os.path.dirname(a) == os.path.dirname(b):
        return []
    return [make("torch-env-mismatch", title=f"`pip` installs into {p.pip_python}, not into {p.executable}",
                 evidence=[f"pip on PATH runs {p.pip_python}", f"target Python: {p.executable}"],
                 fixes=[Fix(title="Install with the target interpreter's own pip",
                            commands=[pip(facts, "install", "<package>")], shell=shell_of(facts))])]


def bnb_rules(facts: Facts):
    b, t, out = facts.bnb, facts.torch, []
    if t.import_ok is not True:
        return out
    if b.installed is False:
        out.append(make("bnb-missing", evidence=[f"target Python: {python_of(facts)}"],
                        fixes=[Fix(title="Install bitsandbytes", commands=[pip(facts, "install", "--upgrade",
                                                                                   "bitsandbytes")],
                                   shell=shell_of(facts), applicable=True)]))
        return out
    if not b.version and b.import_ok is None:
        return out
    version = b.version
    upgrade = Fix(title="Upgrade bitsandbytes", commands=[pip(facts, "install", "--upgrade", "bitsandbytes")],
                  shell=shell_of(facts), applicable=True)
    too_old = []
    if facts.platform.system == "Windows" and K.version_lt(version, K.bnb_min("windows")[0]):
        too_old.append(f"Windows needs bitsandbytes >= {K.bnb_min('windows')[0]} ({K.bnb_min('windows')[1]})")
    if any(K.vkey(cc)[0] in (10, 12) for cc in _ccs(facts)) and K.version_lt(version, K.bnb_min("blackwell")[0]):
        too_old.append(f"Blackwell GPUs need bitsandbytes >= {K.bnb_min('blackwell')[0]} ({K.bnb_min('blackwell')[1]})")
    variant = K.variant_of(t.version, t.cuda)
    if variant and K.bnb_min(variant) and K.version_lt(version, K.bnb_min(variant)[0]):
        too_old.append(f"PyTorch {variant} needs bitsandbytes >= {K.bnb_min(variant)[0]} ({K.bnb_min(variant)[1]})")
    if too_old:
        out.append(make("bnb-too-old", title=f"bitsandbytes {version} is too old here", detail="; ".join(too_old) + ".",
                        evidence=[f"bitsandbytes {version}"] + too_old, fixes=[upgrade]))
        return out
    if b.import_ok is False:
        err = b.import_error or "?"
        if any(s in err.lower() for s in ("cuda setup", "compiled without gpu", "libbitsandbytes")):
            out.append(make("bnb-no-gpu-binary", evidence=[f"import bitsandbytes: {err}"], fixes=[upgrade]))
        else:
            out.append(make("bnb-import-error", title=f"bitsandbytes {version or ''} fails to import: {err}",
                            evidence=[f"import bitsandbytes: {err}"] + b.warnings[-3:], fixes=[upgrade]))
        return out
    if t.cuda_available and b.lib_kind in ("cpu", "none"):
        out.append(make("bnb-no-gpu-binary", title=f"bitsandbytes {version} loaded "
                        + ("its CPU library" if b.lib_kind == "cpu" else "no native library") + " although CUDA works",
                        evidence=[f"native library: {b.native_lib or 'none'}", f"torch CUDA {t.cuda}"]
                        + b.warnings[-3:], fixes=[upgrade, Fix(
                            title="If BNB_CUDA_VERSION is set by mistake, unset it",
                            commands=["unset BNB_CUDA_VERSION"] if shell_of(facts) == "bash"
                            else ["Remove-Item Env:BNB_CUDA_VERSION"], shell=shell_of(facts))]))
        return out
    if b.quant_ok is False:
        out.append(make("bnb-quant-failed", title=f"bitsandbytes 4-bit quantization failed: {b.quant_error}",
                        evidence=[f"bitsandbytes {version}", f"error: {b.quant_error}"], fixes=[upgrade]))
        return out
    if b.import_ok:
        where = {"cuda": "CUDA library", "cpu": "CPU library"}.get(b.lib_kind or "", b.native_lib or "")
        extra = ", 4-bit round trip on the GPU works" if b.quant_ok else (
            ": 4-bit layers run on the CPU (no GPU here)" if b.lib_kind == "cpu" and not t.cuda_available else "")
        out.append(make("bnb-ok", title=f"bitsandbytes {version} ({where}){extra}",
                        evidence=[f"native library: {b.native_lib}"]))
    return out


def torchvision_rules(facts: Facts):
    """torchvision 0.(N+15) is built for torch 2.N (doctor/knowledge/torch.toml [companions]); another pair fails on
    import ("operator torchvision::nms does not exist", "partially initialized module 'torchvision'")."""
    tv, t = facts.python.packages.get("torchvision"), facts.torch.version
    if not tv or not t:
        return []
    tk, vk = K.vkey(t), K.vkey(tv)
    if len(tk) < 2 or len(vk) < 2 or tk[0] != 2 or vk[0] != 0:
        return []
    want = tk[1] + K.load("torch")["companions"]["torchvision_offset"]
    if vk[1] == want:
        return []
    from tunedoc.doctor.rules.signatures import _torchvision

    return [_torchvision(facts, {}, [f"torch {t}", f"torchvision {tv} (torch 2.{tk[1]} needs torchvision 0.{want})"])]


RULES = [torch_rules, bnb_rules, torchvision_rules]
