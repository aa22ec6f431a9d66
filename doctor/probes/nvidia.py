"""NVIDIA driver and GPU probes: NVML through nvidia-ml-py (in-process), then `nvidia-smi`.

As nvitop does, each NVML failure class gets its own name, so the rules can explain it: library_not_found (no
driver installed), driver_not_loaded (kernel module not answering), lib_rm_mismatch (user-space library and kernel
module from different driver versions), no_permission, function_not_found (old driver), unknown.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from tunedoc.doctor.facts import GPU, Facts
from tunedoc.doctor.probes.proc import run_command

SMI_FIELDS = (
    "index,name,uuid,pci.bus_id,compute_cap,memory.total,memory.free,memory.used,driver_version,"
    "utilization.gpu,temperature.gpu,power.draw,power.limit,mig.mode.current,persistence_mode"
)


def _nvml_error_class(exc: Exception) -> str:
    import pynvml

    table = {
        "NVML_ERROR_LIBRARY_NOT_FOUND": "library_not_found",
        "NVML_ERROR_DRIVER_NOT_LOADED": "driver_not_loaded",
        "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "lib_rm_mismatch",
        "NVML_ERROR_NO_PERMISSION": "no_permission",
        "NVML_ERROR_FUNCTION_NOT_FOUND": "function_not_found",
        "NVML_ERROR_NOT_FOUND": "library_not_found",
    }
    code = getattr(exc, "value", None)
    for const, name in table.items():
        if code is not None and code == getattr(pynvml, const, object()):
            return name
    return "unknown"


def probe_nvml(facts: Facts) -> None:
    d = facts.driver
    try:
        import pynvml
    except ImportError as e:  # nvidia-ml-py is a base dependency; still never crash
        d.nvml_error, d.nvml_error_text = "unknown", f"nvidia-ml-py is not installed: {e}"
        return
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        d.nvml_error, d.nvml_error_text = _nvml_error_class(e), str(e)
        if d.nvml_error == "library_not_found":
            d.present = False
        elif d.nvml_error in ("driver_not_loaded", "lib_rm_mismatch"):
            d.present, d.loaded = True, False
        return
    try:
        d.present = d.loaded = True
        d.source = "nvml"
        d.version = _s(pynvml.nvmlSystemGetDriverVersion())
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        except Exception:
            v = pynvml.nvmlSystemGetCudaDriverVersion()
        d.cuda_version = f"{v // 1000}.{(v % 1000) // 10}"
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            g = GPU(index=i, name=_s(_try(pynvml.nvmlDeviceGetName, h)), uuid=_s(_try(pynvml.nvmlDeviceGetUUID, h)))
            pci = _try(pynvml.nvmlDeviceGetPciInfo, h)
            g.pci_bus_id = _s(getattr(pci, "busId", None)) if pci else None
            cc = _try(pynvml.nvmlDeviceGetCudaComputeCapability, h)
            g.compute_capability = f"{cc[0]}.{cc[1]}" if cc else None
            mem = _try(pynvml.nvmlDeviceGetMemoryInfo, h)
            if mem:
                g.memory_total_mb, g.memory_free_mb = mem.total // 2**20, mem.free // 2**20
                g.memory_used_mb = mem.used // 2**20
            mig = _try(pynvml.nvmlDeviceGetMigMode, h)
            if mig:
                g.mig_mode = bool(mig[0])
                if g.mig_mode:
                    g.mig_devices = _mig_uuids(pynvml, h)
            util = _try(pynvml.nvmlDeviceGetUtilizationRates, h)
            g.utilization_pct = getattr(util, "gpu", None)
            g.temperature_c = _try(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
            power = _try(pynvml.nvmlDeviceGetPowerUsage, h)
            g.power_w = power / 1000 if power is not None else None
            limit = _try(pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
            g.power_limit_w = limit / 1000 if limit is not None else None
            pm = _try(pynvml.nvmlDeviceGetPersistenceMode, h)
            g.persistence_mode = bool(pm) if pm is not None else None
            if platform.system() == "Windows":
                dm = _try(pynvml.nvmlDeviceGetDriverModel, h)
                if dm:
                    g.driver_model = {0: "WDDM", 1: "TCC", 2: "MCDM"}.get(dm[0], str(dm[0]))
            gpus.append(g)
        facts.gpus = gpus
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _mig_uuids(pynvml, handle) -> list[str]:
    out = []
    count = _try(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
    for j in range(count):
        mh = _try(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, j)
        if mh is not None:
            u = _s(_try(pynvml.nvmlDeviceGetUUID, mh))
            if u:
                out.append(u)
    return out


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def find_nvidia_smi() -> str | None:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    candidates = ["/usr/lib/wsl/lib/nvidia-smi"]
    if platform.system() == "Windows":
        windir = os.environ.get("WINDIR", r"C:\Windows")
        candidates = [
            os.path.join(windir, "System32", "nvidia-smi.exe"),
            os.path.join(os.environ.get("ProgramFiles", r"C:\Program Files"), "NVIDIA Corporation", "NVSMI",
                         "nvidia-smi.exe"),
        ]
    for c in candidates:
        if Path(c).is_file():
            return c
    return None


def probe_nvidia_smi(facts: Facts, timeout: float = 15) -> None:
    d = facts.driver
    smi = find_nvidia_smi()
    d.nvidia_smi_path = smi
    if not smi:
        if d.present is None:
            d.present = False
        return
    res = run_command([smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"], timeout=timeout)
    if res.returncode != 0 or res.timed_out:
        # nvidia-smi prints its reason on stdout ("NVIDIA-SMI has failed because ...", "Driver/library version
        # mismatch"); keep it verbatim for the rules and the user
        text = (res.stdout + res.stderr).strip()
        if "compute_cap" in text or "not a valid field" in text.lower():
            # old driver without the compute_cap field: ask again without it
            res = run_command([smi, f"--query-gpu={SMI_FIELDS.replace('compute_cap,', '')}",
                               "--format=csv,noheader,nounits"], timeout=timeout)
            if res.returncode == 0:
                _fill_from_smi(facts, res.stdout, with_cc=False)
                probe_topology(facts, smi, timeout=min(timeout, TOPO_TIMEOUT))
                return
        d.nvidia_smi_error = text[-1000:] or f"exit code {res.returncode}"
        if res.timed_out:
            d.nvidia_smi_error = f"nvidia-smi did not answer within {timeout:.0f} s"
        return
    _fill_from_smi(facts, res.stdout, with_cc=True)
    probe_topology(facts, smi, timeout=min(timeout, TOPO_TIMEOUT))
    if d.cuda_version is None:
        plain = run_command([smi], timeout=timeout)
        import re

        m = re.search(r"CUDA Version:\s*([\d.]+)", plain.stdout)
        if m:
            d.cuda_version = m.group(1)


TOPO_TIMEOUT = 10.0


def probe_topology(facts: Facts, smi: str, timeout: float = TOPO_TIMEOUT) -> None:
    """With 2+ GPUs: how they are linked (`nvidia-smi topo -m`) and whether they have peer access (`topo -p2p r`),
    each with a short timeout; a failure is recorded in facts.topology.error, never raised."""
    from tunedoc.doctor.reports.topo import parse_topo

    if len(facts.gpus or []) < 2:
        return
    t = facts.topology
    errors = []
    for argv, what in (([smi, "topo", "-m"], "links"), ([smi, "topo", "-p2p", "r"], "p2p")):
        res = run_command(argv, timeout=timeout)
        got = parse_topo(res.stdout) if res.returncode == 0 and not res.timed_out else None
        if got is not None and getattr(got, what) is not None:
            setattr(t, what, getattr(got, what))
            t.gpus = t.gpus if len(t.gpus) >= len(got.gpus) else got.gpus
            t.legend = {**got.legend, **t.legend}
            t.source = "nvidia-smi topo -m"
            continue
        cmd = " ".join(["nvidia-smi", *argv[1:]])
        if res.timed_out:
            errors.append(f"`{cmd}` did not answer within {timeout:.0f} s")
        elif res.error or res.returncode != 0:
            errors.append(f"`{cmd}` failed: " + (res.error or (res.stdout + res.stderr).strip()[-300:]
                                                or f"exit code {res.returncode}"))
        else:
            errors.append(f"`{cmd}` printed no matrix")
    t.error = "; ".join(errors) or None


def _fill_from_smi(facts: Facts, text: str, with_cc: bool) -> None:
    d = facts.driver
    names = SMI_FIELDS.split(",")
    if not with_cc:
        names.remove("compute_cap")
    gpus = []
    for line in text.strip().splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != len(names):
            continue
        row = dict(zip(names, cols))

        def num(key, cast=int):
            try:
                return cast(float(row[key]))
            except (KeyError, ValueError):
                return None

        gpus.append(GPU(
            index=num("index"), name=row.get("name"), uuid=row.get("uuid"), pci_bus_id=row.get("pci.bus_id"),
            compute_capability=row.get("compute_cap") if row.get("compute_cap", "[N/A]")[0].isdigit() else None,
            memory_total_mb=num("memory.total"), memory_free_mb=num("memory.free"),
            memory_used_mb=num("memory.used"), utilization_pct=num("utilization.gpu"),
            temperature_c=num("temperature.gpu"), power_w=num("power.draw", float),
            power_limit_w=num("power.limit", float),
            mig_mode=row.get("mig.mode.current") == "Enabled" if row.get("mig.mode.current") not in (None, "[N/A]") else None,
            persistence_mode=row.get("persistence_mode") == "Enabled" if row.get("persistence_mode") else None,
        ))
        d.version = d.version or row.get("driver_version")
    d.present = True
    d.loaded = True if d.loaded is None else d.loaded
    d.source = d.source or "nvidia-smi"
    if not facts.gpus:
        facts.gpus = gpus
    else:  # NVML answered: fill what it could not (e.g. compute capability on a very old binding)
        for g, s in zip(facts.gpus, gpus):
            g.compute_capability = g.compute_capability or s.compute_capability
