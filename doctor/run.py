"""The doctor's runner: probes concurrently, each result reported as soon as it is in; then the rules.

    facts = probe_all(on_status=lambda name, status: ...)
    findings = diagnose(facts)

Probes never raise: a probe that fails records why in `facts.probes[name]`. Child processes (the target Python's
packages, torch and bitsandbytes) have timeouts, and `cancel()` kills any still running.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import Finding

PROBES: list[str] = ["platform", "env", "nvml", "nvidia-smi", "toolkit", "python", "torch", "hf", "network"]
PROBE_AREAS: dict[str, list[str]] = {
    "platform": ["platform"],
    "env": ["platform", "hf"],
    "nvml": ["driver", "gpu"],
    "nvidia-smi": ["driver", "gpu"],
    "toolkit": ["cuda"],
    "python": ["torch", "bnb"],
    "torch": ["torch", "bnb"],  # one child imports torch once and answers for torch, then bitsandbytes
    "hf": ["hf"],
    "network": ["hf"],  # can the Hub, the HF_ENDPOINT mirror and ModelScope be reached (probes/network.py)
}
DEFAULT_TIMEOUTS = {"torch": 60.0, "python": 20.0, "nvidia-smi": 15.0, "toolkit": 15.0}
_lock = threading.Lock()


def run_probe(name: str, facts: Facts, python: str | None = None, timeout: float | None = None,
              offline: bool = False) -> ProbeStatus:
    """Run one probe, filling its part of `facts` in place. Never raises. `timeout` is for child processes; the
    network probe keeps its own short one (probes/network.py), and `offline` makes it check nothing."""
    from tunedoc.doctor.probes import network, nvidia, pyenv, system, toolkit

    python = python or sys.executable
    t0 = time.perf_counter()
    status = ProbeStatus(name)
    tmo = timeout or DEFAULT_TIMEOUTS.get(name, 30.0)
    try:
        if name == "platform":
            system.probe_platform(facts)
        elif name == "env":
            system.probe_env(facts)
        elif name == "hf":
            system.probe_hf(facts)
        elif name == "network":
            network.probe_reach(facts, offline=offline)
        elif name == "nvml":
            nvidia.probe_nvml(facts)
            if facts.driver.nvml_error:
                status.error = f"NVML: {facts.driver.nvml_error_text}"
        elif name == "nvidia-smi":
            nvidia.probe_nvidia_smi(facts, timeout=tmo)
            if facts.driver.nvidia_smi_error:
                status.ok, status.error = False, facts.driver.nvidia_smi_error.splitlines()[0]
            elif not facts.driver.nvidia_smi_path:
                status.error = "nvidia-smi not found"
        elif name == "toolkit":
            toolkit.probe_toolkit(facts, timeout=tmo)
        elif name == "python":
            status = pyenv.probe_python(facts, python, timeout=tmo)
        elif name == "torch":
            status, bnb_status = pyenv.probe_torch_bnb(facts, python, timeout=tmo)
            bnb_status.elapsed_s = round(time.perf_counter() - t0, 3)
            with _lock:
                facts.probes["bnb"] = bnb_status
        else:
            status.ok, status.error = False, f"unknown probe {name!r}"
    except Exception as e:  # noqa: BLE001 - a probe bug becomes a failed probe, never a crashed doctor
        status.ok = False
        status.error = f"probe crashed: {type(e).__name__}: {e}"
    status.elapsed_s = round(time.perf_counter() - t0, 3)
    with _lock:
        facts.probes[name] = status
    return status


def probe_all(
    python: str | None = None,
    on_status: Callable[[str, ProbeStatus], None] | None = None,
    only: list[str] | None = None,
    facts: Facts | None = None,
    timeout: float | None = None,
    offline: bool = False,
) -> Facts:
    """Run the probes concurrently; `on_status(name, status)` is called from a worker thread as each finishes.
    `offline`: contact no model source (the network probe records that it was skipped)."""
    from tunedoc import __version__

    facts = facts or Facts()
    facts.tool_version = __version__
    facts.collected_at = time.time()
    names = [n for n in PROBES if only is None or n in only]
    # slowest first, so the torch child starts before the quick in-process probes
    names.sort(key=lambda n: 0 if n in ("torch", "python", "network") else 1)

    def report(name: str, st: ProbeStatus) -> None:
        try:
            on_status(name, st)
        except Exception as e:  # noqa: BLE001 - a display callback's bug must not stop the other probes
            print(f"tunedoc doctor: on_status({name!r}) raised {type(e).__name__}: {e}", file=sys.stderr)

    def one(name: str) -> None:
        st = run_probe(name, facts, python=python, timeout=timeout, offline=offline)
        if on_status:
            report(name, st)
            if name == "torch" and "bnb" in facts.probes:
                report("bnb", facts.probes["bnb"])

    pool = ThreadPoolExecutor(max_workers=len(names) or 1, thread_name_prefix="probe")
    try:
        for fut in [pool.submit(one, n) for n in names]:
            fut.result()
    except BaseException:  # Ctrl-C: kill the children now instead of waiting for their timeouts
        cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return facts


def diagnose(facts: Facts) -> list[Finding]:
    from tunedoc.doctor.rules import evaluate

    return evaluate(facts)


def cancel() -> None:
    """Kill every probe child process still running (their probes then report a timeout/crash)."""
    from tunedoc.doctor.probes.proc import cancel_all

    cancel_all()
