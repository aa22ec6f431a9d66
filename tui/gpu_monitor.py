"""Hardware readings for the Train screen: every GPU through NVML, or the trainer process's CPU and RAM (psutil)
where there is no GPU. No Textual here; a failed query reads as None (shown "n/a"), never an exception.

    monitor = HardwareMonitor()
    sample = monitor.sample(pid)     # HardwareSample; sample.kind == "gpu" | "process" | "none"
    monitor.close()
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

NVML_WHY = {  # nvitop's lesson: each NVML failure class gets its own explanation
    "library_not_found": "no NVIDIA driver found (libnvidia-ml missing)",
    "driver_not_loaded": "the NVIDIA driver is installed but not loaded",
    "lib_rm_mismatch": "driver library and kernel module versions differ: reboot or reload the driver",
    "no_permission": "no permission to query the GPU",
    "function_not_found": "the NVIDIA driver is too old for this query",
}


@dataclass
class GpuReading:
    index: int
    name: str | None = None
    util_pct: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None


@dataclass
class ProcessReading:
    pid: int
    cpu_pct: float | None = None  # percent of one core (can exceed 100 with threads)
    rss_mb: float | None = None
    threads: int | None = None
    cores: int | None = None


@dataclass
class HardwareSample:
    kind: str  # "gpu": NVML readings; "process": no GPU, the trainer's CPU/RAM; "none": nothing to read
    gpus: list[GpuReading] = field(default_factory=list)
    process: ProcessReading | None = None
    note: str = ""  # why there is no GPU reading, or why the process cannot be read
    t: float = 0.0


class HardwareMonitor:
    def __init__(self) -> None:
        self._nvml = None
        self._nvml_why: str | None = None
        self._proc = None
        self._kids: dict = {}  # pid -> psutil.Process of the run's children (primed for cpu_percent)
        self._init_nvml()

    def _init_nvml(self) -> None:
        try:
            import pynvml
        except ImportError:
            self._nvml_why = "nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() == 0:
                self._nvml_why = "the NVIDIA driver sees no GPU"
                pynvml.nvmlShutdown()
                return
            self._nvml = pynvml
        except pynvml.NVMLError as e:
            from tunedoc.doctor.probes.nvidia import _nvml_error_class

            self._nvml_why = NVML_WHY.get(_nvml_error_class(e), f"NVML failed: {e}")
        except Exception as e:  # a broken library must not crash the screen
            self._nvml_why = f"NVML failed: {e}"

    def sample(self, pid: int | None) -> HardwareSample:
        proc = self._process(pid)
        if self._nvml is not None:
            return HardwareSample("gpu", self._gpus(), proc, t=time.time())
        note = f"no GPU: {self._nvml_why}; showing the trainer process's CPU and RAM"
        if proc is None:
            note = f"no GPU: {self._nvml_why}; the trainer process is not running"
            return HardwareSample("none", [], None, note, time.time())
        return HardwareSample("process", [], proc, note, time.time())

    def _gpus(self) -> list[GpuReading]:
        nv = self._nvml
        out = []
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception:
            return out
        for i in range(count):
            r = GpuReading(i)
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
            except Exception:
                out.append(r)
                continue
            name = _try(nv.nvmlDeviceGetName, h)
            r.name = name.decode() if isinstance(name, bytes) else name
            util = _try(nv.nvmlDeviceGetUtilizationRates, h)
            r.util_pct = getattr(util, "gpu", None)
            mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
            if mem is not None:
                r.mem_used_mb, r.mem_total_mb = mem.used / 2**20, mem.total / 2**20
            r.temp_c = _try(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            power = _try(nv.nvmlDeviceGetPowerUsage, h)
            r.power_w = power / 1000 if power is not None else None
            limit = _try(nv.nvmlDeviceGetEnforcedPowerLimit, h)
            r.power_limit_w = limit / 1000 if limit is not None else None
            out.append(r)
        return out

    def _process(self, pid: int | None) -> ProcessReading | None:
        if not pid:
            return None
        import psutil

        try:
            if self._proc is None or self._proc.pid != pid:
                self._proc = psutil.Process(pid)
                self._proc.cpu_percent(None)  # the first call primes the counter
                self._kids = {pid: self._proc}
            # the run's process and its children: a torchrun launch trains in one child per rank
            cpu = rss = threads = 0.0
            seen = {}
            for proc in [self._proc, *self._proc.children(recursive=True)]:
                known = self._kids.get(proc.pid)
                try:
                    if known is None:  # a new child: primed now, counted from the next reading on
                        proc.cpu_percent(None)
                        seen[proc.pid] = proc
                        continue
                    with known.oneshot():
                        cpu += known.cpu_percent(None)
                        rss += known.memory_info().rss
                        threads += known.num_threads()
                    seen[proc.pid] = known
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
            self._kids = seen  # children that ended are dropped
            return ProcessReading(pid, cpu, rss / 2**20, int(threads), psutil.cpu_count())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._proc = None
            return None

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None
