"""Pilot tests of the Doctor screen with a scripted doctor: what a user sees and can do."""

from __future__ import annotations

import io
import json

from rich.console import Console

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import Finding
from tests.tui.conftest import BROKEN, PY, broken_backend, doctor, healthy_backend, settle
from tunedoc.tui.messages import FixFinished, FixOutput, ProbeFinished
from tunedoc.tui.screens.help import HelpScreen
from tunedoc.tui.widgets.area_row import AreaRow
from tunedoc.tui.widgets.dialogs import ConfirmCommands, PathPrompt


def row(app, area: str) -> AreaRow:
    return doctor(app).query_one(f"#area-{area}", AreaRow)


def summary(app) -> str:
    return str(doctor(app).query_one("#summary").render())


async def test_first_paint_before_any_probe_answers_then_fills_in(app_for):
    backend = healthy_backend(hold=tuple(healthy_backend().probes))
    messages = []
    app = app_for(backend)
    async with app.run_test(message_hook=messages.append) as pilot:
        await pilot.pause(0.1)
        assert [row(app, a).state for a in ("driver", "gpu", "torch", "hf")] == ["pending"] * 4
        assert summary(app).startswith("Checking this machine… 0 of 6")
        backend.release("nvml")
        for _ in range(50):
            await pilot.pause(0.02)
            if row(app, "gpu").state != "pending":
                break
        # rules re-evaluated on the partial facts: the GPU answered, PyTorch has not
        assert row(app, "gpu").state == "ok" and "RTX 4090" in row(app, "gpu").line
        assert row(app, "torch").state == "pending"
        for name in backend.probes:
            backend.release(name)
        await settle(pilot)
        assert summary(app) == "Ready to train on RTX 4090, 24 GB"
        assert all(row(app, a).state == "ok" for a in ("driver", "gpu", "cuda", "torch", "bnb", "platform", "hf"))
    finished = [m.name for m in messages if isinstance(m, ProbeFinished)]
    assert sorted(finished) == sorted(backend.probes)


async def test_broken_box_says_how_many_problems_and_lists_errors_first(app_for):
    app = app_for(broken_backend())
    async with app.run_test() as pilot:
        await settle(pilot)
        assert summary(app).startswith("Fix 3 problems first")
        assert row(app, "driver").state == "error" and row(app, "driver").icon == "✗"
        assert row(app, "hf").state == "warning" and row(app, "hf").icon == "!"
        shown = doctor(app).model.all_findings()
        assert [f.severity for f in shown][:3] == ["error"] * 3


async def test_slow_probe_shows_elapsed_time_and_can_be_cancelled(app_for, clock):
    backend = healthy_backend(hold=("torch",))
    app = app_for(backend)
    async with app.run_test() as pilot:
        for _ in range(50):
            await pilot.pause(0.02)
            if doctor(app).model.running() == ["torch"]:
                break
        clock.t += 12.4
        await pilot.pause(0.2)
        assert row(app, "torch").line == "checking torch… 12 s (c cancels)"
        await pilot.press("c")
        await settle(pilot)
        assert backend.cancelled == 1
        assert row(app, "torch").state == "failed"
        assert "cancelled after 12.4 s" in row(app, "torch").line
        assert doctor(app).facts.probes["torch"].ok is False


async def test_failed_probe_shows_why_with_exit_code_and_stderr(app_for):
    backend = healthy_backend()
    backend.probes["torch"].status = ProbeStatus("torch", ok=False, error="python crashed importing torch (SIGSEGV)",
                                                 exit_code=-11, stderr_tail="Fatal Python error: Segmentation fault")
    backend.findings = [f for f in backend.findings if f.area not in ("torch", "bnb")]
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        assert row(app, "torch").state == "failed"
        assert "SIGSEGV" in row(app, "torch").line
        failed = [f for f in doctor(app).model.all_findings() if f.id == "tui-probe-failed"]
        assert "exit code -11" in failed[0].evidence and "Segmentation fault" in failed[0].detail


async def test_a_probe_that_raises_becomes_a_failed_check(app_for):
    backend = healthy_backend()
    backend.probes["toolkit"].raises = RuntimeError("boom")
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        assert row(app, "cuda").state == "failed"
        assert "the check crashed: RuntimeError: boom" in row(app, "cuda").line
        assert summary(app).startswith("1 check did not answer")


async def test_selecting_a_finding_shows_explanation_evidence_and_fixes(app_for):
    app = app_for(broken_backend())
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # the second error: PyTorch's CPU build
        await pilot.pause(0.1)
        detail = doctor(app).query_one("#detail")
        assert detail.display and detail.finding.id == "torch-cpu-build"
        text = " ".join(str(w.render()) for w in detail.query("Static"))
        assert "CPU wheel" in text and "torch.version.cuda None" in text and "cu128" in text
        await pilot.press("escape")
        assert not doctor(app).query_one("#detail").display


async def test_copy_puts_the_exact_commands_on_the_clipboard(app_for):
    app = app_for(broken_backend())
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("y")  # the driver finding: shown, not applicable, but copyable
        assert app.clipboard == "sudo ubuntu-drivers install\nsudo reboot"


async def test_a_system_fix_is_never_applied(app_for):
    backend = broken_backend()
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("a")  # highlighted: the driver install
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmCommands)
        assert backend.applied == []


async def test_apply_asks_first_streams_output_and_rechecks(app_for):
    backend = broken_backend(after_fix=[f for f in BROKEN if f.id != "torch-cpu-build"])
    messages = []
    app = app_for(backend)
    async with app.run_test(message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter", "a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmCommands)
        assert app.screen.commands == TORCH_COMMANDS()
        await pilot.press("escape")
        assert backend.applied == []
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("enter")  # Enter on the focused Cancel button: still nothing runs
        await pilot.pause()
        assert backend.applied == [] and not isinstance(app.screen, ConfirmCommands)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        await settle(pilot)
        assert [f.title for f in backend.applied] == ["Install PyTorch 2.7.0 built for CUDA 12.8 (cu128)"]
        log_lines = [m.line for m in messages if isinstance(m, FixOutput)]
        assert log_lines[0].startswith(f"$ {PY} -m pip install") and "Successfully installed" in log_lines
        assert doctor(app).query_one("#log").display
        assert any(isinstance(m, FixFinished) and m.returncode == 0 for m in messages)
        rerun = [name for name, _ in backend.ran[6:]]
        assert sorted(rerun) == ["python", "torch"]
        assert "torch-cpu-build" not in [f.id for f in doctor(app).model.findings]
        assert summary(app).startswith("Fix 2 problems first")


def TORCH_COMMANDS():
    return next(f for f in BROKEN if f.id == "torch-cpu-build").fixes[0].commands


async def test_failed_fix_reruns_nothing(app_for):
    backend = broken_backend(fix_returncode=1)
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("down", "a")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert len(backend.applied) == 1 and len(backend.ran) == 6  # applied, failed, nothing re-checked
        assert "torch-cpu-build" in [f.id for f in doctor(app).model.findings]
        assert "exit code 1" in "\n".join(str(line) for line in doctor(app).query_one("#log").lines)


async def test_rerun_all_and_one_area(app_for):
    backend = broken_backend()
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert len(backend.ran) == 12
        await pilot.press("r")  # highlighted: the driver finding -> the probes behind driver
        await settle(pilot)
        assert [n for n, _ in backend.ran[12:]] == ["nvml"]


async def test_switch_target_python_reruns_with_it(app_for):
    backend = healthy_backend()
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PathPrompt)
        app.screen.query_one("Input").value = "/missing/python"
        await pilot.press("enter")
        await pilot.pause()
        assert "no such file" in str(app.screen.query_one("#error").render())
        app.screen.query_one("Input").value = "/opt/conda/envs/ft/bin/python"
        await pilot.press("enter")
        await settle(pilot)
        assert {py for _, py in backend.ran[6:]} == {"/opt/conda/envs/ft/bin/python"}
        assert "/opt/conda/envs/ft/bin/python" in str(doctor(app).query_one("#target").render())


async def test_save_writes_the_report(app_for, tmp_path):
    backend = broken_backend()
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("Input").value = str(tmp_path / "r.json")
        await pilot.press("enter")
        await settle(pilot)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["facts"]["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"
    assert {f["id"] for f in data["findings"]} >= {"driver-too-old", "torch-cpu-build"}


async def test_open_report_diagnoses_it_and_a_missing_file_says_so(app_for):
    report = Facts(origin="report")
    backend = healthy_backend(report=report, report_findings=[
        Finding("torch-cpu-build", "error", "torch", "PyTorch 2.7.0+cpu is a CPU build: it cannot use the GPU")])
    app = app_for(backend)
    async with app.run_test(notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("Input").value = "/tmp/missing.txt"
        await pilot.press("enter")
        await settle(pilot)
        assert any("no such file: /tmp/missing.txt" in n.message for n in app._notifications)
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("Input").value = "/tmp/collect_env.txt"
        await pilot.press("enter")
        await settle(pilot)
        assert summary(app) == "Report /tmp/collect_env.txt: Fix 1 problem first: select one for the exact commands"
        assert row(app, "driver").line == "not in the report"


async def test_from_report_at_start(app_for):
    backend = healthy_backend(report=Facts(origin="report"), report_findings=[])
    app = app_for(backend, report_paths=["/tmp/smi.txt"])
    async with app.run_test() as pilot:
        await settle(pilot)
        assert backend.ran == []  # nothing probed: the report describes another machine
        assert summary(app).startswith("Report /tmp/smi.txt: No problems found")


async def test_help_palette_and_quit(app_for):
    app = app_for(healthy_backend())
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-keys").content)
        keys = console.export_text()
        assert "Re-run every check" in keys and "Copy the fix's commands" in keys and "Quit" in keys
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Doctor: re-run all checks", "Doctor: re-run PyTorch", "Doctor: apply fix",
                       "Doctor: save redacted report", "Doctor: open report", "Doctor: switch target Python",
                       "Go to Doctor", "Help", "Quit"):
            assert wanted in titles
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0



async def test_no_gpu_box_offers_the_demo_on_d_and_a_gpu_box_does_not(app_for, tmp_path):
    from tests.tui.conftest import probes
    from tests.tui.train_fixtures import CPU, copy_runs
    from tunedoc.tui.backends import FakeDoctorBackend
    from tunedoc.tui.train_backend import FakeHardware, TrainBackend

    runs = copy_runs(tmp_path)
    train = TrainBackend(runs, hardware=FakeHardware(CPU), poll_s=0.05)
    started = []
    train.start_demo = lambda: started.append(1) or runs / "demo-finished"
    no_gpu = FakeDoctorBackend(probes=probes(), python=PY, findings=[
        Finding("no-gpu", "warning", "gpu", "No NVIDIA GPU: training runs on the CPU (demo and tiny models only)")])
    app = app_for(no_gpu, train_backend=train)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "press D" in summary(app)
        assert any(b.binding.action == "demo" and b.enabled for b in app.active_bindings.values())  # in the footer
        await pilot.press("D")
        for _ in range(50):
            await pilot.pause(0.05)
            if started and getattr(app.screen, "run_dir", None) is not None:
                break
        assert app.current_mode == "train" and started == [1]
        assert app.screen.run_dir.name == "demo-finished"  # watching the demo run

    app = app_for(healthy_backend(), train_backend=TrainBackend(runs, hardware=FakeHardware(CPU)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "demo" not in {b.binding.action for b in app.active_bindings.values()}
        await pilot.press("D")
        await pilot.pause(0.1)
        assert app.current_mode == "doctor"


async def test_open_a_hand_written_report_names_its_facts(app_for, tmp_path):
    # the real parser and rules behind `o`, on the new kinds: a markdown template and a GBK-encoded Windows traceback
    from tunedoc.doctor.reports import parse_files
    from tunedoc.doctor.rules import evaluate

    class Backend(type(healthy_backend())):
        def load_report(self, paths):
            return parse_files(paths)

        def diagnose(self, facts):
            return evaluate(facts)

    template = tmp_path / "issue.md"
    template.write_text("### Environment\n- **PyTorch Version**: 2.6.0+cu124\n- GPU: NVIDIA GeForce RTX 5090\n"
                        "- Driver: 570.124.04\n", encoding="utf-8")
    zh = tmp_path / "zh.txt"
    zh.write_bytes(('  File "D:\\ai\\venv\\lib\\site-packages\\torch\\__init__.py", line 148\n'
                    "OSError: [WinError 1114] 动态链接库(DLL)初始化例程失败。\n").encode("gbk"))
    backend = Backend(probes={}, findings=[], python=PY)
    app = app_for(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        for path, area, expect in ((template, "torch", "has no kernels for NVIDIA GeForce RTX 5090"),
                                   (zh, "torch", "fails to import")):
            await pilot.press("o")
            await pilot.pause()
            app.screen.query_one("Input").value = str(path)
            await pilot.press("enter")
            await settle(pilot)
            assert expect in row(app, area).line
        # the driver area names the version read from the prose; an area the report does not mention says so
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("Input").value = str(template)
        await pilot.press("enter")
        await settle(pilot)
        assert row(app, "driver").line == "NVIDIA driver 570.124.04"
        assert row(app, "bnb").line == "not in the report"


async def test_multi_gpu_findings_sit_in_their_areas(app_for):
    # the real parser and rules on the 2-GPU machine fixtures (tests/doctor/fixtures/machines), opened at start
    from pathlib import Path

    from tunedoc.doctor.reports import parse_files
    from tunedoc.doctor.rules import evaluate

    class Backend(type(healthy_backend())):
        def load_report(self, paths):
            return parse_files(paths)

        def diagnose(self, facts):
            return evaluate(facts)

    machines = Path(__file__).resolve().parents[1] / "doctor" / "fixtures" / "machines"
    for name, area, state, line, ids in (
            ("mixed-3090-3060", "gpu", "warning", "torch's cuda:0 is nvidia-smi's GPU 1 (RTX 3090)",
             {"device-order", "gpu-mixed"}),
            ("2x-rtx4090-no-p2p", "gpu", "warning", "2 x RTX 4090: no peer-to-peer access", {"gpu-no-p2p"}),
            ("2x-a100-nvlink", "gpu", "ok", "2 x NVIDIA A100-SXM4-80GB", set())):
        backend = Backend(probes={}, findings=[], python=PY)
        app = app_for(backend, report_paths=[str(machines / f"{name}.json")])
        async with app.run_test() as pilot:
            await settle(pilot)
            assert row(app, area).state == state and line in row(app, area).line, (name, row(app, area).line)
            shown = doctor(app).model.all_findings()
            assert ids <= {f.id for f in shown if f.area == area}
            assert all(f.area == "gpu" for f in shown if f.id in ("device-order", "gpu-mixed", "gpu-no-p2p"))
