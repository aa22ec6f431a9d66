"""The real backend's fix runner and report writer, and the screen model's summary line (no terminal needed)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
import threading

import pytest

from tunedoc.doctor.facts import GPU, Facts, ProbeStatus
from tunedoc.doctor.findings import Finding, Fix
from tunedoc.tui.backends import BackendError, RealDoctorBackend, command_argv, parse_env_command, run_fix_commands
from tunedoc.tui.doctor_model import DoctorModel, apply_changes, copy_facts, gpu_phrase

AREAS = {"nvml": ["driver", "gpu"], "torch": ["torch", "bnb"], "hf": ["hf"]}


def test_env_commands_for_each_shell():
    assert parse_env_command("export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True") == \
        ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    assert parse_env_command('$env:USE_LIBUV = "0"') == ("USE_LIBUV", "0")
    assert parse_env_command("set CUDA_VISIBLE_DEVICES=0") == ("CUDA_VISIBLE_DEVICES", "0")
    assert parse_env_command("sudo reboot") is None


def test_only_pip_for_the_target_python_is_run():
    py = sys.executable
    assert command_argv(f"{py} -m pip install -U bitsandbytes", py) == [py, "-m", "pip", "install", "-U",
                                                                        "bitsandbytes"]
    with pytest.raises(BackendError, match="run 'sudo apt-get install nvidia-driver-570' yourself"):
        command_argv("sudo apt-get install nvidia-driver-570", py)
    with pytest.raises(BackendError, match="not the selected Python"):
        command_argv("/other/venv/bin/python -m pip install torch", py)


def test_applying_streams_real_output_and_sets_env(monkeypatch):
    monkeypatch.delenv("TUNEDOC_TEST_VAR", raising=False)
    lines: list[str] = []
    fix = Fix("check pip", [f"{sys.executable} -m pip --version", "export TUNEDOC_TEST_VAR=on"], applicable=True)
    rc = run_fix_commands(fix, sys.executable, lines.append, threading.Event())
    assert rc == 0
    assert any(line.startswith("pip ") for line in lines)  # pip's own output, streamed
    assert os.environ["TUNEDOC_TEST_VAR"] == "on"


def test_a_failing_command_stops_the_fix():
    lines: list[str] = []
    fix = Fix("bad", [f"{sys.executable} -m pip no-such-command", "export TUNEDOC_NEVER=1"], applicable=True)
    assert run_fix_commands(fix, sys.executable, lines.append, threading.Event()) != 0
    assert "TUNEDOC_NEVER" not in os.environ and lines[-1].endswith("stopped here")


def test_system_fixes_are_refused_before_anything_runs():
    with pytest.raises(BackendError, match="run it yourself"):
        run_fix_commands(Fix("driver", ["sudo reboot"]), sys.executable, print, threading.Event())
    mixed = Fix("mixed", [f"{sys.executable} -m pip --version", "sudo reboot"], applicable=True)
    lines: list[str] = []
    with pytest.raises(BackendError):
        run_fix_commands(mixed, sys.executable, lines.append, threading.Event())
    assert lines == []


def test_report_needs_an_existing_file():
    with pytest.raises(BackendError, match="no such file: /nope/report.txt"):
        RealDoctorBackend().load_report(["/nope/report.txt"])


def test_check_python_names_the_problem(tmp_path):
    backend = RealDoctorBackend()
    assert backend.check_python(sys.executable) is None
    assert "no such file" in backend.check_python(str(tmp_path / "python"))
    assert "is a directory" in backend.check_python(str(tmp_path))


def test_summary_line_says_what_to_do_next():
    model = DoctorModel(AREAS)
    facts = Facts(gpus=[GPU(name="NVIDIA GeForce RTX 4090", memory_total_mb=24564)])
    model.start(list(AREAS), 0.0, fresh=True)
    assert model.summary(facts)[0] == "Checking this machine… 0 of 3 checks answered"
    for name in AREAS:
        model.finish(name, ProbeStatus(name), 1.0, model.generation)
    assert model.summary(facts) == ("Ready to train on RTX 4090, 24 GB", "ok")
    model.findings = [Finding("x", "error", "torch", "a"), Finding("y", "error", "bnb", "b")]
    assert model.summary(facts)[0].startswith("Fix 2 problems first")
    model.findings = [Finding("no-gpu", "warning", "gpu", "No NVIDIA GPU")]
    assert model.summary(Facts(gpus=[]))[0] == "No NVIDIA GPU: press D to train the CPU demo and watch it"
    model.report = ["box.txt"]  # a pasted report: no demo to offer for someone else's machine
    assert model.summary(Facts(gpus=[]))[0] == "Report box.txt: no NVIDIA GPU in it"


def test_gpu_phrase_counts_identical_cards():
    two = Facts(gpus=[GPU(name="NVIDIA A100-SXM4-80GB", memory_total_mb=81920)] * 2)
    assert gpu_phrase(two) == "2 × A100-SXM4-80GB, 80 GB each"
    assert gpu_phrase(Facts()) is None


def test_stale_answers_are_ignored():
    model = DoctorModel(AREAS)
    old = model.start(["torch"], 0.0, fresh=True)
    model.start(["torch"], 1.0, fresh=True)
    assert not model.finish("torch", ProbeStatus("torch"), 2.0, old)
    assert model.running() == ["torch"]


def test_probe_answers_merge_without_overwriting_each_other():
    main = Facts()
    base = copy_facts(main)
    a, b = copy_facts(main), copy_facts(main)
    a.driver.version, a.probes["nvml"] = "570.86.10", ProbeStatus("nvml")
    b.torch.version, b.probes["torch"] = "2.7.0+cu128", ProbeStatus("torch")
    apply_changes(main, base, a)
    apply_changes(main, base, b)
    assert (main.driver.version, main.torch.version) == ("570.86.10", "2.7.0+cu128")
    assert set(main.probes) == {"nvml", "torch"}
    assert json.loads(main.to_json())["driver"]["version"] == "570.86.10"


def test_saved_report_is_redacted_and_reads_back(tmp_path):
    home = str(Path.home())
    facts = Facts()
    facts.python.executable = f"{home}/venv/bin/python"
    facts.platform.hostname = socket.gethostname()
    findings = [Finding("torch-cpu-build", "error", "torch", "CPU build", evidence=[f"{home}/venv/lib/torch"])]
    backend = RealDoctorBackend()
    out = backend.save_report(facts, findings, str(tmp_path))
    text = out.read_text()
    assert out.name == "tunedoc-report.json"
    assert home not in text and f"\"{socket.gethostname()}\"" not in text
    assert json.loads(text)["findings"][0]["id"] == "torch-cpu-build"
    assert backend.load_report([str(out)]).python.executable is not None
