"""`tunedoc doctor` as a user runs it: the summary, -v, --json, --from, --save (redacted), exit codes, and the
ASCII fallback for consoles that cannot print ✓."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.doctor.facts import GPU, HF, Bnb, Driver, Facts, Platform, PythonEnv, Torch
from tunedoc.cli import main

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_" + "Zq9Xw8Vu7" * 4


def healthy() -> Facts:
    f = Facts()
    f.platform = Platform(system="Linux", release="6.8.0", machine="x86_64", distro="Ubuntu 24.04.1 LTS",
                          is_wsl=False, in_container=False, pci_nvidia_devices=1, symlinks_supported=True,
                          shell="bash", hostname="alice-gpubox")
    f.driver = Driver(present=True, loaded=True, version="570.124.06", cuda_version="12.8", source="nvml")
    f.gpus = [GPU(index=0, name="NVIDIA GeForce RTX 4090", compute_capability="8.9", memory_total_mb=24564,
                  memory_free_mb=23000, memory_used_mb=1564)]
    f.python = PythonEnv(executable="/home/alice/venv/bin/python", version="3.11.9", prefix="/home/alice/venv",
                         is_venv=True, is_conda=False, pip_available=True,
                         packages={"torch": "2.7.0+cu128", "bitsandbytes": "0.45.5", "pip": "24.0"})
    f.torch = Torch(installed=True, import_ok=True, version="2.7.0+cu128", cuda="12.8", cudnn="90701",
                    arch_list=["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], cuda_available=True,
                    device_count=1, devices=[{"name": "NVIDIA GeForce RTX 4090", "capability": "8.9",
                                              "total_mb": 24080}],
                    cuda_op_ok=True, bf16_supported=True,
                    file="/home/alice/venv/lib/python3.11/site-packages/torch/__init__.py")
    f.bnb = Bnb(installed=True, import_ok=True, version="0.45.5", native_lib="libbitsandbytes_cuda128.so",
                lib_kind="cuda", quant_ok=True)
    f.hf = HF(home="/home/alice/.cache/huggingface", hub_cache="/home/alice/.cache/huggingface/hub",
              endpoint="https://huggingface.co", token_present=True, cache_bytes=0,
              disk_free_bytes=500 * 10**9, disk_total_bytes=1000 * 10**9)
    f.env.vars = {"HF_ENDPOINT": f"https://user:{SECRET}@mirror.example"}
    return f


def save_facts(tmp_path: Path, facts: Facts, name: str = "facts.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps({"version": "0", "facts": facts.to_dict(), "findings": []}))
    return str(p)


def doctor(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_healthy_machine_summary(tmp_path, capsys):
    rc, out, err = doctor(capsys, "--from", save_facts(tmp_path, healthy()))
    assert rc == 0, out + err
    lines = out.splitlines()
    assert any(l.startswith("[✓] PyTorch 2.7.0+cu128") for l in lines), out
    assert any(l.startswith("[✓] NVIDIA driver 570.124.06") for l in lines), out
    assert not any(l.startswith(("[✗]", "[!]")) for l in lines), out
    assert lines[-1] == "Ready to train on RTX 4090, 24 GB."
    # areas in the contract's order
    firsts = [l for l in lines if l.startswith("[")]
    assert "driver" in firsts[0] and "Hugging Face" in firsts[-1]


def test_error_exits_1_and_names_the_categories(tmp_path, capsys):
    f = healthy()
    f.torch = Torch(installed=True, import_ok=True, version="2.7.0+cpu", cuda=None, cuda_available=False,
                    arch_list=[])
    f.python.packages["torch"] = "2.7.0+cpu"
    rc, out, _ = doctor(capsys, "--from", save_facts(tmp_path, f))
    assert rc == 1
    assert any(l.startswith("[✗]") and "CPU-only" in l for l in out.splitlines()), out
    last = out.splitlines()[-1]
    assert last.startswith("Doctor found issues in 1 category (PyTorch): fix the ✗ lines first. Next step:")


def test_verbose_shows_detail_evidence_and_copyable_commands(tmp_path, capsys):
    f = healthy()
    f.torch = Torch(installed=True, import_ok=True, version="2.7.0+cpu", cuda=None, cuda_available=False)
    rc, out, _ = doctor(capsys, "-v", "--from", save_facts(tmp_path, f))
    assert rc == 1
    assert "Fix: " in out and "• torch 2.7.0+cpu" in out
    # the install command stands alone on its line (indent only), with the target interpreter and a CUDA index
    cmd_lines = [l.strip() for l in out.splitlines() if "-m pip install" in l]
    assert cmd_lines and cmd_lines[0].startswith("/home/alice/venv/bin/python -m pip install")
    assert "download.pytorch.org/whl/cu12" in cmd_lines[0]


def test_json_is_one_object_with_the_contract_fields(tmp_path, capsys):
    rc, out, err = doctor(capsys, "--json", "--from", save_facts(tmp_path, healthy()))
    data = json.loads(out)
    assert set(data) == {"version", "facts", "findings"}
    assert data["facts"]["torch"]["version"] == "2.7.0+cu128"
    for f in data["findings"]:
        assert {"id", "severity", "title", "detail", "evidence", "fixes"} <= set(f)
        assert f["severity"] in ("error", "warning", "info", "ok")
    assert rc == 0


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\x00\x01\x02\xff\xfe" * 200, ""),
    (b"just some words that are not a report\n", "no report recognized"),
])
def test_bad_from_file_exits_2_with_the_reason(tmp_path, capsys, content, message):
    p = tmp_path / "report.txt"
    p.write_bytes(content)
    rc, out, err = doctor(capsys, "--from", str(p))
    assert rc == 2 and out == ""
    assert err.startswith("tunedoc doctor: ") and message in err
    assert "report.txt" in err


def test_missing_from_file(tmp_path, capsys):
    rc, out, err = doctor(capsys, "--from", str(tmp_path / "nope.txt"))
    assert rc == 2 and "nope.txt: no such file" in err and out == ""


def test_bad_python_exits_2(tmp_path, capsys):
    rc, out, err = doctor(capsys, "--python", str(tmp_path / "env" / "bin" / "python"))
    assert rc == 2 and "no such interpreter" in err and out == ""


def test_several_from_files_merge(tmp_path, capsys):
    """An nvidia-smi paste plus a saved facts file with a CPU torch: the GPU from one, the torch from the other."""
    smi = (Path(__file__).parent / "fixtures" / "probe" / "nvidia-smi-plain.txt").read_text()
    (tmp_path / "smi.txt").write_text(smi)
    f = Facts()
    f.torch = Torch(installed=True, import_ok=True, version="2.7.0+cpu", cuda=None, cuda_available=False)
    rc, out, _ = doctor(capsys, "--json", "--from", str(tmp_path / "smi.txt"), "--from", save_facts(tmp_path, f))
    data = json.loads(out)
    assert data["facts"]["driver"]["version"] == "570.124.06"
    assert data["facts"]["torch"]["version"] == "2.7.0+cpu"
    assert "torch-cpu-build" in [x["id"] for x in data["findings"]]
    assert rc == 1


def test_save_redacts_and_reads_back(tmp_path, capsys):
    src = save_facts(tmp_path, healthy())
    out_file = tmp_path / "share.json"
    rc, out, err = doctor(capsys, "--from", src, "--save", str(out_file))
    assert rc == 0 and "redacted" in err
    text = out_file.read_text()
    assert "alice" not in text and SECRET not in text
    assert "<redacted>" in text
    host = socket.gethostname()
    if len(host) >= 3:
        assert host not in text
    saved = json.loads(text)
    assert saved["facts"]["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"  # the diagnosis survives
    rc2, out2, _ = doctor(capsys, "--json", "--from", str(out_file))
    ids = sorted(x["id"] for x in json.loads(out2)["findings"])
    rc1, out1, _ = doctor(capsys, "--json", "--from", src)
    assert ids == sorted(x["id"] for x in json.loads(out1)["findings"])


def test_ascii_fallback_when_the_console_cannot_print_checkmarks(tmp_path):
    from tunedoc.doctor.render import make_console, render
    from tunedoc.doctor.rules import evaluate

    f = healthy()
    f.bnb = Bnb(installed=False)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    render(f, evaluate(f), verbose=True, console=make_console(stream))
    stream.flush()
    text = raw.getvalue().decode("cp1252")
    assert "[+] PyTorch" in text and "✓" not in text and "✗" not in text
    assert any(l.startswith("[!] ") for l in text.splitlines()), text


def test_real_doctor_json_on_this_machine():
    """The real command, as a script would run it: JSON only on stdout, finishes, says there is no GPU."""
    env = {**os.environ, "HF_TOKEN": SECRET}
    proc = subprocess.run([sys.executable, "-m", "tunedoc", "doctor", "--json"], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    facts = data["facts"]
    assert facts["python"]["executable"] and facts["torch"]["import_ok"] is True
    assert facts["platform"]["system"] == "Linux" and facts["hf"]["token_present"] is True
    assert SECRET not in proc.stdout  # presence only, never the value
    assert all(s["ok"] for n, s in facts["probes"].items() if n in ("python", "torch", "bnb"))
    if facts["driver"]["present"] is False:  # this CI box: no driver, no GPU
        ids = [f["id"] for f in data["findings"]]
        assert "no-gpu" in ids or "no-driver" in ids


@pytest.mark.parametrize("raw, gone, kept", [
    ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz", "Authorization: Bearer <redacted>"),
    ("HF_ENDPOINT=https://bob:s3cret@mirror.example/hf", "s3cret", "https://<redacted>@mirror.example/hf"),
    (r"File C:\Users\Bob Smith\miniconda3\Lib\site-packages\torch\__init__.py", "Bob Smith",
     r"C:\Users\<redacted>\miniconda3\Lib\site-packages\torch"),
    ("/home/carol/.cache/huggingface/hub", "carol", "/home/<redacted>/.cache/huggingface/hub"),
    ("/mnt/c/Users/dave/Downloads/log.txt", "dave", "/mnt/c/Users/<redacted>/Downloads"),
    ("token=" + SECRET, SECRET, "<redacted>"),
])
def test_redaction(raw, gone, kept):
    from tunedoc.doctor.redact import redact_text

    out = redact_text(raw)
    assert gone not in out and kept in out


def test_redaction_keeps_what_diagnoses():
    from tunedoc.doctor.redact import redact_text

    text = ("/usr/local/cuda-12.4/bin/nvcc; torch 2.7.0+cu128; NVIDIA GeForce RTX 4090; "
            r"C:\Users\Public\x; /rootfs/etc; libcudart.so.12")
    assert redact_text(text) == text


def test_a_report_without_torch_does_not_claim_ready(tmp_path, capsys):
    smi = tmp_path / "smi.txt"
    smi.write_text((Path(__file__).parent / "fixtures" / "probe" / "nvidia-smi-plain.txt").read_text())
    rc, out, _ = doctor(capsys, "--from", str(smi))
    assert rc == 0
    assert "[-] PyTorch: not in the report" in out
    assert out.splitlines()[-1] == ("No problem found on RTX 5090, 32 GB, but PyTorch and bitsandbytes were not "
                                    "in the report.")


def test_an_area_with_several_findings_is_a_group_worst_first():
    from tunedoc.doctor.findings import Finding, Fix
    from tunedoc.doctor.render import make_console, render

    findings = [
        Finding(id="torch-env-mismatch", severity="warning", area="torch", title="pip and python differ"),
        Finding(id="torch-cpu-build", severity="error", area="torch", title="PyTorch is a CPU-only build",
                fixes=[Fix(title="Install the CUDA build", commands=["python -m pip install torch"])]),
        Finding(id="platform-ok", severity="ok", area="platform", title="Ubuntu 24.04"),
    ]
    buf = io.StringIO()
    render(healthy(), findings, console=make_console(buf), ascii_only=False)
    lines = buf.getvalue().splitlines()
    i = lines.index("[✗] PyTorch")
    assert lines[i + 1] == "    ✗ PyTorch is a CPU-only build" and lines[i + 2] == "    ! pip and python differ"
    assert "[✓] Platform: Ubuntu 24.04" in lines
    assert lines[-1].startswith("Doctor found issues in 1 category (PyTorch)")
    assert "Install the CUDA build" in lines[-1]
