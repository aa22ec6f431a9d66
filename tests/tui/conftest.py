"""Scripted machines for the TUI tests: a healthy GPU box, a broken one, one still probing."""

from __future__ import annotations

import pytest

from tunedoc.doctor.facts import GPU, Facts
from tunedoc.doctor.findings import Finding, Fix
from tunedoc.tui.app import make_app
from tunedoc.tui.backends import FakeDoctorBackend, FakeProbe

PY = "/home/ana/venv/bin/python"


class Clock:
    """A frozen clock for spinners and elapsed times; tests move it by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _gpu(facts: Facts) -> None:
    facts.gpus = [GPU(index=0, name="NVIDIA GeForce RTX 4090", memory_total_mb=24564, compute_capability="8.9")]
    facts.driver.version = "570.86.10"


def probes(hold: tuple[str, ...] = ()) -> dict[str, FakeProbe]:
    return {
        "platform": FakeProbe(["platform"], hold="platform" in hold),
        "nvml": FakeProbe(["driver", "gpu"], fill=_gpu, hold="nvml" in hold),
        "toolkit": FakeProbe(["cuda"], hold="toolkit" in hold),
        "python": FakeProbe(["torch", "bnb"], hold="python" in hold),
        "torch": FakeProbe(["torch", "bnb"], hold="torch" in hold),
        "hf": FakeProbe(["hf"], hold="hf" in hold),
    }


HEALTHY = [
    Finding("driver-ok", "ok", "driver", "NVIDIA driver 570.86.10 (supports CUDA 12.8)"),
    Finding("gpu-ok", "ok", "gpu", "NVIDIA GeForce RTX 4090, 24 GB, compute capability 8.9"),
    Finding("cuda-ok", "ok", "cuda", "No CUDA toolkit needed: PyTorch wheels bring their own CUDA runtime"),
    Finding("torch-ok", "ok", "torch", "PyTorch 2.7.0+cu128 sees the GPU and ran a CUDA op"),
    Finding("bnb-ok", "ok", "bnb", "bitsandbytes 0.46.0: 4-bit quantization works on the GPU"),
    Finding("platform-ok", "ok", "platform", "Ubuntu 22.04.4 LTS, x86_64"),
    Finding("hf-ok", "ok", "hf", "Model cache ~/.cache/huggingface/hub (412 GB free); token set"),
]

TORCH_FIX = Fix("Install PyTorch 2.7.0 built for CUDA 12.8 (cu128)",
                [f"{PY} -m pip install --upgrade --force-reinstall torch==2.7.0 --index-url "
                 "https://download.pytorch.org/whl/cu128"], url="https://pytorch.org/get-started/locally/",
                applicable=True)
BROKEN = [
    Finding("driver-too-old", "error", "driver", "Driver 470.256.02 is too old for PyTorch built with CUDA 12.8",
            "A CUDA program needs a driver at least as new as the CUDA it was built with.",
            ["driver 470.256.02 supports CUDA 11.4", "torch 2.7.0+cu128 needs driver >= 525.60.13"],
            [Fix("Install NVIDIA driver 570 or newer, then reboot",
                 ["sudo ubuntu-drivers install", "sudo reboot"],
                 url="https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/")]),
    Finding("gpu-ok", "ok", "gpu", "NVIDIA GeForce RTX 4090, 24 GB, compute capability 8.9"),
    Finding("torch-cpu-build", "error", "torch", "PyTorch 2.7.0+cpu is a CPU build: it cannot use the GPU",
            "pip installed the CPU wheel from PyPI's default index.", ["torch 2.7.0+cpu", "torch.version.cuda None"],
            [TORCH_FIX]),
    Finding("bnb-no-gpu-binary", "error", "bnb", "bitsandbytes 0.42.0 has no CUDA library for this PyTorch",
            "Old bitsandbytes releases ship no binary for CUDA 12.8.", ["bitsandbytes 0.42.0"],
            [Fix("Upgrade bitsandbytes", [f"{PY} -m pip install --upgrade bitsandbytes"], applicable=True)]),
    Finding("platform-ok", "ok", "platform", "Ubuntu 22.04.4 LTS, x86_64"),
    Finding("hf-no-token", "warning", "hf", "No Hugging Face token: gated models (Llama, Gemma) will not download",
            "", ["HF_TOKEN unset", "no ~/.cache/huggingface/token"],
            [Fix("Log in with a read token", ["tunedoc login"])]),
]


def healthy_backend(**kw) -> FakeDoctorBackend:
    return FakeDoctorBackend(probes=probes(kw.pop("hold", ())), findings=list(HEALTHY), python=PY, **kw)


def broken_backend(**kw) -> FakeDoctorBackend:
    return FakeDoctorBackend(probes=probes(kw.pop("hold", ())), findings=list(BROKEN), python=PY, **kw)


def doctor(app):
    """The Doctor screen, even under a modal."""
    from tunedoc.tui.screens.doctor import DoctorScreen

    return next(s for s in app.screen_stack if isinstance(s, DoctorScreen))


async def settle(pilot, timeout: float = 5.0) -> None:
    """Wait until no probe is running and every posted message is handled."""
    for _ in range(int(timeout / 0.02)):
        await pilot.pause(0.02)
        if not doctor(pilot.app).model.running():
            break
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_for(clock):
    """make_app with a fake backend and a frozen clock; held probes are released at teardown."""
    made = []

    def build(backend, **kw):
        made.append(backend)
        return make_app(doctor_backend=backend, clock=clock, **kw)

    yield build
    for backend in made:
        backend.cancel()


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch):
    """A steady cursor keeps snapshots stable (as harlequin does)."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False)
