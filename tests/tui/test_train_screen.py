"""Pilot tests of the Train screen on recorded runs: history, live tailing, controls, died runs, the start form."""

from __future__ import annotations

import json
import time

import pytest
from textual.widgets import Input, Static

from tests.tui.train_fixtures import GPU, copy_runs, drawn, train_app
from tunedoc.tui.screens.train import TrainScreen
from tunedoc.tui.widgets.loss_chart import LossChart
from tunedoc.tui.widgets.run_panels import HardwarePanel, StatsPanel


def screen(app) -> TrainScreen:
    return next(s for s in app.screen_stack if isinstance(s, TrainScreen))


def text(widget) -> str:
    return str(widget.render())


async def test_attach_shows_the_whole_history(tmp_path):
    app, _ = train_app(copy_runs(tmp_path), "demo-finished")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot)
        s = screen(app)
        losses = s.query_one("#loss", LossChart).series[0][1]
        assert [p[0] for p in losses] == list(range(1, 41))
        assert losses[0][1] > 6 > 2 > losses[-1][1]  # the loss fell
        stats = text(s.query_one(StatsPanel))
        assert "completed" in stats and "40/40" in stats and "1.9209" in stats
        assert "completed" in text(s.query_one("#title"))


async def test_follows_new_events_and_warnings_notify(tmp_path):
    runs = copy_runs(tmp_path)
    app, _ = train_app(runs, "demo-running")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot)
        s = screen(app)
        assert s.query_one("#loss", LossChart).series[0][1][-1][0] == 26
        with open(runs / "demo-running" / "events.jsonl", "a") as f:
            f.write(json.dumps({"v": 1, "t": time.time(), "type": "step", "step": 27, "loss": 1.5, "lr": 1e-3,
                                "tokens_per_s": 900, "samples_per_s": 3.0, "elapsed_s": 44, "eta_s": 20}) + "\n")
            f.write(json.dumps({"v": 1, "t": time.time(), "type": "warning", "message": "loss spiked"}) + "\n")
            f.write('{"v": 1, "t": 1.0, "type": "step", "step": 28, "lo')  # torn: not read yet
        await drawn(pilot)
        losses = s.query_one("#loss", LossChart).series[0][1]
        assert losses[-1] == (27, 1.5)
        assert "27/40" in text(s.query_one(StatsPanel))
        assert any("loss spiked" in str(n.message) for n in app._notifications)
        assert any("loss spiked" in line.text for line in s.view.log)


async def test_died_run_reads_as_failed_with_its_last_error(tmp_path):
    app, _ = train_app(copy_runs(tmp_path), "demo-failed")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot)
        s = screen(app)
        assert s.state() == "failed"
        alert = text(s.query_one("#alert"))
        assert "gone without finishing" in alert and "DataLoader worker" in alert
        assert "--resume" in alert
        assert "failed" in text(s.query_one(StatsPanel))


async def test_controls_write_control_files_and_stop_asks_first(tmp_path):
    runs = copy_runs(tmp_path)
    app, _ = train_app(runs, "demo-running")
    control = runs / "demo-running" / "control"
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 3)
        await pilot.press("s")
        assert (control / "save").exists()
        await pilot.press("p")
        assert (control / "pause").exists()
        await pilot.press("x")
        await pilot.pause(0.2)
        assert not (control / "stop").exists()  # a confirmation first
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not (control / "stop").exists()
        await pilot.press("x")
        await pilot.pause(0.2)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert (control / "stop").exists()


async def test_controls_on_a_finished_run_say_why_not(tmp_path):
    runs = copy_runs(tmp_path)
    app, _ = train_app(runs, "demo-finished")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 3)
        await pilot.press("p")
        await pilot.pause(0.1)
        assert not (runs / "demo-finished" / "control" / "pause").exists()
        assert any("completed" in str(n.message) and "not running" in str(n.message) for n in app._notifications)


async def test_gpu_panel_shows_each_gpu(tmp_path):
    app, _ = train_app(copy_runs(tmp_path), "demo-running", hardware=GPU)
    async with app.run_test(size=(120, 40)) as pilot:
        await drawn(pilot)
        hw = text(screen(app).query_one(HardwarePanel))
        assert "GPU0" in hw and "97%" in hw and "18.0/24.0 GB" in hw and "71°C" in hw and "388/450 W" in hw


async def test_start_form_refuses_bad_data_before_starting(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    app, backend = train_app(copy_runs(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)
        s.query_one("#model", Input).value = str(tmp_path / "model")
        s.query_one("#data", Input).value = str(bad)
        s.query_one("#data", Input).focus()
        await pilot.press("enter")
        for _ in range(100):  # the check runs `tunedoc data check` in a child process
            await pilot.pause(0.1)
            if s.data_report is not None:
                break
        assert s.data_report is not None and not s.data_report["ok"]
        assert "problem" in text(s.query_one("#datacheck"))
        await pilot.click("#start")
        await pilot.pause(0.2)
        assert any("data check found problems" in str(n.message) for n in app._notifications)
        assert s.run_dir is None


async def test_demo_button_builds_and_trains_the_tiny_model_in_a_child_and_attaches(tmp_path):
    import functools

    import pytest

    app, backend = train_app(tmp_path / "runs")
    backend.alive = None  # the demo is a real detached run: use the real liveness check
    backend.start_demo = functools.partial(type(backend).start_demo, backend, steps=6)
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)
        await pilot.click("#demo")
        for _ in range(600):  # `tunedoc demo --detach` builds the model in a child process, then trains 6 steps
            await pilot.pause(0.1)
            if s.view.done is not None:
                break
        else:
            pytest.fail("the demo run did not finish on the screen")
        await drawn(pilot)  # panels redraw on a timer
        assert s.run_dir is not None and s.run_dir.name.endswith("demo-Tuna")
        assert s.view.done["status"] == "completed" and "6/6" in text(s.query_one(StatsPanel))


def test_start_demo_reports_why_the_child_failed(tmp_path):
    import subprocess

    import pytest

    from tunedoc.tui.train_backend import TrainBackend

    def failing(argv, **kw):
        assert argv[3:6] == ["tunedoc", "demo", "--detach"] and argv[1] == "-c"  # tunedoc.child: no cwd on the path
        return subprocess.CompletedProcess(argv, 1, "", "Traceback...\nOSError: [Errno 28] No space left on device\n")

    with pytest.raises(RuntimeError, match="No space left on device"):
        TrainBackend(tmp_path).start_demo(run=failing)


async def test_browse_picks_the_data_file_and_checks_it(tmp_path):
    from tunedoc.tui.widgets.dialogs import PickFile

    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    (data.parent / "notes.txt").write_text("not a data set")
    app, backend = train_app(copy_runs(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)
        s.query_one("#data", Input).value = str(data.parent / "draft.jsonl")  # the picker opens in its folder
        await pilot.click("#browse")
        await pilot.pause(0.3)
        assert isinstance(app.screen, PickFile)
        tree = app.screen.query_one("#tree")
        for _ in range(50):
            await pilot.pause(0.05)
            if tree.root.children:
                break
        names = [str(n.label) for n in tree.root.children]
        assert names == ["train.jsonl"]  # only data files (and folders) are offered
        tree.move_cursor(tree.root.children[0])
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert s.query_one("#data", Input).value == str(data)
        for _ in range(100):  # picking a file runs the data check
            await pilot.pause(0.1)
            if s.data_report is not None:
                break
        assert s.data_report is not None and s.data_report["ok"]


async def test_start_form_refuses_a_folder_that_is_not_a_model(tmp_path):
    good = tmp_path / "data.jsonl"
    good.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    empty = tmp_path / "empty-model"
    empty.mkdir()
    runs = copy_runs(tmp_path)
    before = sorted(p.name for p in runs.iterdir())
    app, _ = train_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)
        s.query_one("#model", Input).value = str(empty)
        s.query_one("#data", Input).value = str(good)
        s._start(str(empty), str(good), None, None)
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert any("has no config.json" in str(n.message) for n in app._notifications)
        assert s.run_dir is None
    assert sorted(p.name for p in runs.iterdir()) == before, "a run directory was created"


# --- the GPU field ---------------------------------------------------------------------------------------------
TWO_GPUS = ["NVIDIA GeForce RTX 5060 Ti", "NVIDIA GeForce RTX 5060 Ti"]


async def test_gpu_field_starts_a_run_planned_for_the_chosen_gpus(tmp_path, monkeypatch):
    """The run's config.json "launch" is trainer.launch's plan of the GPUs chosen in the form; the process start is
    stubbed (no GPU here), the plan is real."""
    from textual.widgets import SelectionList

    from tunedoc.trainer import launch
    from tunedoc.tui.messages import TrainingChoice

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "tokenizer.json").write_text("{}")
    data = tmp_path / "data.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    spawned = []

    def spawn(run_dir, extra, python, detach):
        spawned.append(json.loads((run_dir / "config.json").read_text()))
        return launch.RunHandle(run_dir.name, run_dir, 0)

    monkeypatch.setattr(launch, "_spawn", spawn)
    app, _ = train_app(tmp_path / "runs", gpu_names=TWO_GPUS)
    async with app.run_test(size=(100, 40)) as pilot:
        s = screen(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        box = s.query_one("#gpus", SelectionList)
        assert sorted(box.selected) == [0, 1]  # every GPU by default, as `tunedoc train`
        assert "2 processes, one per GPU (0, 1), through torchrun" in text(s.query_one("#launch-plan"))
        s.post_message(TrainingChoice(str(model), "qlora-min", [], gpus="1"))  # the Profile screen's "one GPU"
        await pilot.pause()
        assert box.selected == [0] and "one process on GPU 0" in text(s.query_one("#launch-plan"))
        s.query_one("#data", Input).value = str(data)
        box.focus()
        await pilot.press("space", "down", "space")  # GPU 0 off, GPU 1 on
        assert box.selected == [1] and "one process on GPU 1" in text(s.query_one("#launch-plan"))

        async def start() -> None:
            await pilot.click("#start")
            await app.workers.wait_for_complete()
            await pilot.pause()

        await start()
        assert spawned[-1]["launch"] == launch.plan_launch(gpus="1,", gpu_names=TWO_GPUS)
        assert spawned[-1]["launch"]["gpus"] == [1] and spawned[-1]["launch"]["env"]["CUDA_VISIBLE_DEVICES"] == "1"
        assert s.run_dir is not None and s.run_dir.name == spawned[-1]["run_id"]  # attached to it

        await pilot.press("n")
        box.focus()
        await pilot.press("up", "space")  # both GPUs
        await start()
        two = spawned[-1]["launch"]
        # what `tunedoc train` writes by default: the plan, with auto's strategy resolved by start_run
        assert two == launch.resolve_strategy(launch.plan_launch(gpu_names=TWO_GPUS), spawned[-1])
        assert two["nproc"] == 2 and two["gpus"] == [0, 1] and two["env"]["NCCL_P2P_DISABLE"] == "1"

        await pilot.press("n")
        box.focus()
        await pilot.press("space", "down", "space")  # none
        await start()
        assert len(spawned) == 2 and "choose at least one GPU" in text(s.query_one("#launch-plan"))
        assert any("choose at least one GPU" in str(n.message) for n in app._notifications)


def fake_model(tmp_path, config: dict | None = None):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    (model / "tokenizer.json").write_text("{}")
    data = tmp_path / "data.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    return model, data


@pytest.fixture
def spawned(monkeypatch):
    """The config.json of every run started (the process start stubbed: no GPU here; the plan is real)."""
    from tunedoc.trainer import launch

    configs: list[dict] = []

    def spawn(run_dir, extra, python, detach):
        configs.append(json.loads((run_dir / "config.json").read_text()))
        return launch.RunHandle(run_dir.name, run_dir, 0)

    monkeypatch.setattr(launch, "_spawn", spawn)
    return configs


async def test_strategy_field_with_several_gpus_and_the_run_gets_it(tmp_path, spawned):
    """The Profile screen hands fsdp over (its auto's choice): the form shows it and the run's launch has it."""
    from textual.widgets import Select, SelectionList

    from tunedoc.trainer import launch
    from tunedoc.tui.messages import TrainingChoice

    model, data = fake_model(tmp_path)
    app, _ = train_app(tmp_path / "runs", gpu_names=TWO_GPUS)
    async with app.run_test(size=(100, 40)) as pilot:
        s = screen(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert s.query_one("#strategy-row").display  # two GPUs: two processes share the model
        assert s.query_one("#strategy", Select).value == "auto" and "strategy auto: decided at start" in text(
            s.query_one("#launch-plan"))
        why = "strategy auto: fsdp, the whole model needs 24.6 GiB per GPU but the cards hold its shards (16.7 GiB)"
        s.post_message(TrainingChoice(str(model), "qlora-min", [], strategy="fsdp", strategy_why=why))
        await pilot.pause()
        assert s.query_one("#strategy", Select).value == "fsdp"
        plan = text(s.query_one("#launch-plan"))
        assert "strategy fsdp: weights, adapter and optimizer states sharded" in plan
        # the low-memory load (trainer/fsdp.py): no GPU loads the whole model
        assert "rank 0 reads the model into CPU RAM and each GPU only ever holds its shards" in plan, plan
        assert f"from the Profile screen: {why}" in plan
        s.query_one("#data", Input).value = str(data)

        async def start() -> None:
            await pilot.click("#start")
            await app.workers.wait_for_complete()
            await pilot.pause()

        await start()
        config = spawned[-1]
        assert config["profile"]["strategy"] == "fsdp" and config["sets"] == ["strategy=fsdp"]
        assert config["launch"] == launch.resolve_strategy(launch.plan_launch(gpu_names=TWO_GPUS), config)
        assert config["launch"]["strategy"] == "fsdp" and config["launch"]["nproc"] == 2
        assert "strategy fsdp: as asked" in config["launch"]["notes"]

        await pilot.press("n")
        s.query_one("#strategy", Select).value = "ddp"  # chosen in the form
        await pilot.pause()
        assert "strategy ddp: every process holds the whole model" in text(s.query_one("#launch-plan"))
        assert "from the Profile screen" not in text(s.query_one("#launch-plan"))
        await start()
        assert spawned[-1]["launch"]["strategy"] == "ddp" and spawned[-1]["sets"] == ["strategy=ddp"]

        await pilot.press("n")
        box = s.query_one("#gpus", SelectionList)
        box.focus()
        await pilot.press("space")  # GPU 0 off: one process, nothing to share
        await pilot.pause()
        assert not s.query_one("#strategy-row").display and "strategy" not in text(s.query_one("#launch-plan"))
        await start()
        one = spawned[-1]
        assert one["sets"] == [] and "strategy" not in one["launch"] and one["launch"]["gpus"] == [1]


async def test_profile_screen_hand_over_starts_the_run_with_its_gpus_and_strategy(tmp_path, spawned):
    """Profile (2 x 24 GiB, a 32B model: auto picks fsdp for qlora-min) -> t -> the real Train form -> Start."""
    from textual.widgets import DataTable, Select

    from tests.tui.test_profile_screen import CONFIGS, TWO_24GB
    from tunedoc.trainer import launch
    from tunedoc.tui.app import make_app
    from tunedoc.tui.profile_backend import ProfileBackend
    from tunedoc.tui.train_backend import TrainBackend

    names = ["NVIDIA GeForce RTX 4090"] * 2
    model, data = fake_model(tmp_path, json.loads((CONFIGS / "qwen2.5-32b.json").read_text()))
    app = make_app(start="profile", clock=lambda: 1000.0, profile_backend=ProfileBackend(probe=lambda: TWO_24GB),
                   train_backend=TrainBackend(tmp_path / "runs", alive=set(), gpu_names=names))
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("m", *str(model), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        profile = app.screen
        table = profile.query_one("#profiles", DataTable)
        table.move_cursor(row=[r.key.value for r in table.ordered_rows].index("qlora-min"))
        await pilot.pause()
        assert profile.picked["qlora-min"][0] == "fsdp"
        await pilot.press("t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        s = screen(app)
        assert app.screen is s and s.query_one("#model", Input).value == str(model)
        assert s.query_one("#strategy", Select).value == "fsdp" and s.query_one("#strategy-row").display
        assert "2 processes, one per GPU (0, 1)" in text(s.query_one("#launch-plan"))
        assert "from the Profile screen: strategy auto: fsdp" in text(s.query_one("#launch-plan"))
        s.query_one("#data", Input).value = str(data)
        await pilot.click("#start")
        await app.workers.wait_for_complete()
        await pilot.pause()
        [config] = spawned
        assert config["launch"] == launch.resolve_strategy(launch.plan_launch(gpu_names=names), config)
        assert config["launch"]["strategy"] == "fsdp" and config["profile"]["name"] == "qlora-min"


async def test_cpu_processes_show_the_strategy_field_from_two(tmp_path):
    app, _ = train_app(copy_runs(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not s.query_one("#strategy-row").display  # one CPU process
        s.query_one("#nproc", Input).value = "2"
        await pilot.pause()
        assert s.query_one("#strategy-row").display
        assert "strategy auto: decided at start" in text(s.query_one("#launch-plan"))


async def test_without_gpus_the_field_is_cpu_processes_and_a_bad_count_is_named(tmp_path):
    app, _ = train_app(copy_runs(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert s.query_one("#nproc").display and not s.query_one("#gpus").display
        assert "no NVIDIA GPU here" in text(s.query_one("#gpus-label"))
        assert "one process" in text(s.query_one("#launch-plan"))
        s.query_one("#nproc", Input).value = "0"
        await pilot.pause()
        assert "--nproc 0: at least 1" in text(s.query_one("#launch-plan"))
        s.query_one("#nproc", Input).value = "2"
        await pilot.pause()
        assert s.launch_choice() == (None, 2) and "2 processes on the CPU (gloo)" in text(s.query_one("#launch-plan"))


@pytest.mark.slow
async def test_cpu_processes_2_start_a_real_two_rank_run(tmp_path, tiny_model_dir, identity_jsonl):
    from tunedoc.tui.messages import TrainingChoice

    app, backend = train_app(tmp_path / "runs")
    backend.alive = None  # a real detached run: the real liveness check
    sets = ["quant=nf4", "max_steps=3", "cutoff_len=64", "micro_batch=1", "grad_accum=1", "save_every=0",
            "eval_split=0", "sample_every=0", "lora_dropout=0"]
    async with app.run_test(size=(100, 40)) as pilot:
        s = screen(app)
        await app.workers.wait_for_complete()
        s.post_message(TrainingChoice(str(tiny_model_dir), "qlora-min", sets))
        await pilot.pause()
        s.query_one("#data", Input).value = str(identity_jsonl)
        s.query_one("#nproc", Input).value = "2"
        await pilot.pause()
        await pilot.click("#start")
        for _ in range(2400):  # torchrun starts two ranks that each import torch: tens of seconds on a busy box
            await pilot.pause(0.1)
            if s.view.done is not None:
                break
        else:
            pytest.fail(f"the 2-rank run did not finish; status {s.status}")
        assert s.view.done["status"] == "completed", s.view.done
        config = json.loads((s.run_dir / "config.json").read_text())
        assert config["launch"]["nproc"] == 2 and config["launch"]["device"] == "cpu"
        start = s.view.start
        assert start["world_size"] == 2 and "2 ranks (gloo)" in start["device"]


async def test_the_closing_eval_shows_evaluating_then_how_far_the_scores_moved(tmp_path):
    """A demo run after its last step: 'evaluating' while it scores the held-out questions (not a frozen run), then
    the base -> tuned line, read from the run directory as it is written."""
    from tunedoc.tui.app import make_app
    from tunedoc.tui.train_backend import FakeHardware, TrainBackend
    from tests.tui.train_fixtures import CPU

    runs = copy_runs(tmp_path)
    run = runs / "demo-finished"
    lines = (run / "events.jsonl").read_text().splitlines()
    tail = [l for l in lines if json.loads(l)["type"] in ("eval", "done")]  # the closing eval's result, then done
    now = time.time()
    head = [json.dumps(dict(json.loads(l), t=now)) if json.loads(l)["type"] == "phase" else l
            for l in lines if l not in tail]
    (run / "events.jsonl").write_text("\n".join(head) + "\n")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(dict(status, status="running", phase="evaluating", pid=4242)))
    backend = TrainBackend(runs, attach=run, alive={"demo-finished"}, hardware=FakeHardware(CPU), poll_s=0.05)
    app = make_app(start="train", train_backend=backend, clock=lambda: 1000.0)
    async with app.run_test(size=(80, 24)) as pilot:
        s = screen(app)

        async def until(ok) -> None:  # the tailer and the 2 Hz redraw take their time on a busy box
            for _ in range(150):
                await pilot.pause(0.1)
                if ok():
                    return

        await until(lambda: "evaluating" in text(s.query_one("#title")))
        assert "evaluating" in text(s.query_one("#title")) and text(s.query_one(StatsPanel)).startswith("evaluating")
        assert not s.query_one("#outcome").display
        (run / "status.json").write_text(json.dumps(dict(status, status="completed")))
        with open(run / "events.jsonl", "a") as f:
            for l in tail:
                f.write(json.dumps(dict(json.loads(l), t=time.time())) + "\n")
        moved = "ROUGE-L 3.4 -> 42.5 (+39.1), BLEU-4 0.8 -> 17.6 (+16.7), eval loss 6.97 -> 2.01 (-4.97)"
        outcome = s.query_one("#outcome")
        await until(lambda: outcome.display and "completed" in text(s.query_one("#title")))
        assert outcome.display and moved in text(outcome)
        assert "completed" in text(s.query_one("#title"))
        assert any(moved in str(n.message) for n in app._notifications)  # it landed while watching
