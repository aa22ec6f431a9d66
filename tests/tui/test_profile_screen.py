"""The Profile screen: pilot tests with a scripted GPU and real config.json files, and snapshots at 80x24/120x40.

The estimates are the real profiles engine (pure arithmetic on config.json); only the GPU probe and the config
loader are scripted. Update snapshots with `--snapshot-update`, then LOOK at the SVGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from tunedoc.doctor.facts import GPU, Facts
from tunedoc.profiles.archs import ConfigNotFound
from tunedoc.tui.app import make_app
from tunedoc.tui.messages import ModelChosen, TrainingChoice
from tunedoc.tui.profile_backend import GpuChoice, GpuProbe, ProfileBackend, probe_from_facts
from tunedoc.tui.screens import ScreenSpec

CONFIGS = Path(__file__).resolve().parents[1] / "profiles" / "configs"
RTX4090 = GpuProbe(GpuChoice("NVIDIA GeForce RTX 4090", 22.5, 24.0, "probe"))
NO_GPU = GpuProbe(None, "NVML: driver not loaded (nvidia.ko is not loaded)")
SPECS = [ScreenSpec("profile", "Profile", "3", "tunedoc.tui.screens.profile:ProfileScreen")]
WITH_TRAIN = SPECS + [ScreenSpec("train", "Train", "4", "tests.tui.test_profile_screen:RecordingTrainScreen")]


class RecordingTrainScreen(Screen):
    """Stands in for the Train screen: records the TrainingChoice it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[TrainingChoice] = []

    def on_training_choice(self, message: TrainingChoice) -> None:
        self.received.append(message)


def load(name: str) -> dict:
    if name == "missing/model":
        raise ConfigNotFound("missing/model: no such model on the Hub (or it is private: log in with "
                             "`tunedoc login`); check the id, e.g. Qwen/Qwen2.5-7B")
    return json.loads((CONFIGS / f"{name}.json").read_text())


def app_with(probe: GpuProbe = RTX4090, screens=SPECS):
    backend = ProfileBackend(probe=lambda: probe, load_config=load)
    return make_app(profile_backend=backend, start="profile", screens=screens, clock=lambda: 0.0)


async def choose_model(pilot, model: str = "qwen2.5-7b") -> None:
    await pilot.press("m", *model, "enter")
    await settle(pilot)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def rows(app) -> list[str]:
    table = app.screen.query_one("#profiles", DataTable)
    return [str(r.key.value) for r in table.ordered_rows]


async def test_profiles_ranked_for_the_gpu_with_breakdown():
    app = app_with()
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        assert "RTX 4090" in text(app, "#gpu") and "22.5 GiB free" in text(app, "#gpu")
        await choose_model(pilot)
        screen = app.screen
        assert "qwen2 · 7.62 B parameters" in text(app, "#model-status")
        order = rows(app)
        assert sorted(order) == ["lora-16bit", "lora-8bit", "qlora-balanced", "qlora-long", "qlora-min"]
        fits = [screen.results[n].fits for n in order]
        assert fits == sorted(fits, reverse=True)  # everything that fits comes first
        assert screen.results["lora-16bit"].fits is False  # 7B in 16 bit cannot fit in 22.5 GiB
        assert screen.results["qlora-min"].fits is True
        # the first row (best fit) is selected and its breakdown and trade-offs are shown
        assert screen.current == order[0]
        assert screen.query_one("#profile-detail").border_title.startswith(order[0])
        assert "fits with" in text(app, "#verdict")
        assert "LoRA rank" in text(app, "#tradeoffs")
        bar = str(screen.query_one("#breakdown").render())
        assert "activations" in bar and "CUDA context" in bar
        # the non-fitting one says by how much and what would make it fit
        table = screen.query_one("#profiles", DataTable)
        table.move_cursor(row=order.index("lora-16bit"))
        await pilot.pause()
        assert "over the budget" in text(app, "#verdict")


async def test_keys_adjust_cutoff_batch_rank_and_the_estimate_follows():
    app = app_with()
    async with app.run_test(size=(100, 34)) as pilot:
        await choose_model(pilot)
        screen = app.screen
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("qlora-balanced"))
        await pilot.pause()
        before = screen.results["qlora-balanced"]
        p0 = before.profile
        await pilot.press("C")
        after = screen.results["qlora-balanced"]
        assert after.profile.cutoff_len == 2 * p0.cutoff_len
        assert after.estimate.total_gb > before.estimate.total_gb
        assert screen.query_one("#sets", Input).value == f"cutoff_len={2 * p0.cutoff_len}"
        await pilot.press("B")  # double the micro-batch, the effective batch stays
        p = screen.results["qlora-balanced"].profile
        assert p.micro_batch == 2 * p0.micro_batch and p.effective_batch == p0.effective_batch
        await pilot.press("R")
        p = screen.results["qlora-balanced"].profile
        assert p.lora_r == 2 * p0.lora_r and p.lora_alpha / p.lora_r == p0.lora_alpha / p0.lora_r
        assert "qlora-balanced*" in str(screen.query_one("#profiles", DataTable).get_row("qlora-balanced")[1])
        assert rows(app)[0] == "qlora-long"  # rows do not jump while adjusting
        await pilot.press("x")
        assert screen.results["qlora-balanced"].profile == p0
        assert screen.query_one("#sets", Input).value == ""


async def test_typed_overrides_update_as_you_type_and_bad_values_are_named():
    app = app_with()
    async with app.run_test(size=(100, 34)) as pilot:
        await choose_model(pilot)
        screen = app.screen
        name = screen.current
        base_total = screen.results[name].estimate.total_gb
        await pilot.press("s", *"lora_r=128")
        assert screen.results[name].profile.lora_r == 128
        assert screen.results[name].estimate.total_gb > base_total
        await pilot.press(*" quant=nf3")
        verdict = text(app, "#verdict")
        assert "quant='nf3' is not valid" in verdict and "nf4-dq" in verdict
        assert screen.results[name].profile.quant != "nf3"
        await pilot.press(*" cutoff")
        assert "write key=value" in text(app, "#verdict")


async def test_no_gpu_asks_for_vram_or_a_gpu_name():
    app = app_with(NO_GPU)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert "driver not loaded" in text(app, "#gpu") and "g: type a VRAM" in text(app, "#gpu")
        assert not isinstance(screen.focused, Input)  # the late probe answer does not steal the keyboard
        await pilot.press("g")
        await pilot.pause()
        assert screen.has_class("-gpu-edit") and isinstance(screen.focused, Input)
        await pilot.press(*"banana", "enter")
        assert "no GPU named 'banana'" in text(app, "#gpu")
        screen.query_one("#gpu-input", Input).value = ""
        await pilot.press(*"12", "enter")
        assert screen.gpu.free_gb == 12 and not screen.has_class("-gpu-edit")
        await choose_model(pilot)
        assert screen.results["qlora-min"].fits and not screen.results["lora-16bit"].fits
        fit_12 = {n for n, r in screen.results.items() if r.fits}
        await pilot.press("g")
        screen.query_one("#gpu-input", Input).value = ""
        await pilot.press(*"A100 80GB", "enter")
        assert screen.gpu.name and "A100" in screen.gpu.name and screen.gpu.free_gb == 80
        fit_80 = {n for n, r in screen.results.items() if r.fits}
        assert fit_12 < fit_80 and "lora-8bit" in fit_80  # the bigger card fits more
        await pilot.press("f")  # lora-16bit's suggested change (smaller micro-batch) makes it fit the 80 GB card
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("lora-16bit"))
        await pilot.pause()
        await pilot.press("f")
        assert screen.results["lora-16bit"].fits


async def test_model_errors_are_shown_with_the_fix():
    app = app_with()
    async with app.run_test(size=(100, 34)) as pilot:
        await choose_model(pilot, "missing/model")
        status = text(app, "#model-status")
        assert "no such model on the Hub" in status and "tunedoc login" in status
        assert app.screen.results == {}


async def test_model_chosen_elsewhere_loads_and_continue_hands_the_choice_to_train():
    app = app_with(screens=WITH_TRAIN)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        app.screen.post_message(ModelChosen("llama-3.1-8b"))
        await settle(pilot)
        screen = app.screen
        assert screen.query_one("#model", Input).value == "llama-3.1-8b"
        assert screen.model.model_type == "llama"
        name = screen.current
        await pilot.press("C", "t")
        await pilot.pause(0.2)
        assert app.current_mode == "train"
        [choice] = app.screen.received  # the screen importlib built (pytest may import this file under another name)
        cutoff = screen.results[name].profile.cutoff_len
        assert (choice.model, choice.profile_name, choice.sets) == ("llama-3.1-8b", name, [f"cutoff_len={cutoff}"])
        assert choice.argv() == ["--model", "llama-3.1-8b", "--profile", name, "--set", f"cutoff_len={cutoff}"]


async def test_without_a_train_screen_continue_says_the_command():
    app = app_with()
    async with app.run_test(size=(100, 34)) as pilot:
        await choose_model(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert app.current_mode == "profile"
        notes = [n.message for n in app._notifications]
        assert any(f"tunedoc train --model qwen2.5-7b --profile {app.screen.current}" in n for n in notes)


# --- several GPUs: the per-GPU fit ------------------------------------------------------------------------------
def machine(*cards: tuple[str, int, int]) -> GpuProbe:
    """The doctor's facts of a box with these (name, total MiB, free MiB) GPUs, as the Profile screen reads them."""
    facts = Facts()
    facts.gpus = [GPU(index=i, name=n, memory_total_mb=total, memory_free_mb=free)
                  for i, (n, total, free) in enumerate(cards)]
    return probe_from_facts(facts)


TWO_16GB = machine(("NVIDIA GeForce RTX 5060 Ti", 16311, 15900), ("NVIDIA GeForce RTX 5060 Ti", 16311, 15700))
MIXED = machine(("NVIDIA GeForce RTX 4090", 24564, 23040), ("NVIDIA GeForce RTX 3060", 12288, 11776))


async def test_two_gpus_fit_per_gpu_for_all_of_them_and_a_switches_to_one():
    app = app_with(TWO_16GB, screens=WITH_TRAIN)
    async with app.run_test(size=(120, 40)) as pilot:
        await choose_model(pilot)
        screen = app.screen
        assert screen.gpus_used() == 2  # every GPU by default, as `tunedoc train`
        assert ("2 × RTX 5060 Ti · strategy auto: ddp · per GPU 15.3 GiB free (GPU 1, the smallest)   a: one GPU"
                in text(app, "#gpu"))
        name = screen.current
        per_gpu = screen.results[name].estimate
        one = ProfileBackend.fit_one(screen.model.config, screen.results[name].profile, screen.gpu).estimate
        # each GPU holds the whole model (replicated) plus DDP's buckets and NCCL's buffers
        assert per_gpu.total_gb == pytest.approx(one.total_gb + per_gpu.breakdown["ddp_buckets"]
                                                 + per_gpu.breakdown["nccl_buffers"])
        assert per_gpu.breakdown["ddp_buckets"] > 0 and per_gpu.details["gpus"] == 2
        multi = text(app, "#multi")
        assert "world size 2 (ddp)" in multi and f"per GPU {per_gpu.total_gb:.1f} GiB" in multi
        for share in ("replicated", "per rank", "communication"):
            assert share in multi
        p = screen.results[name].profile
        assert f"global batch {p.micro_batch} × {p.grad_accum} × 2 = {p.micro_batch * p.grad_accum * 2}" in multi
        assert "decides" not in multi  # equal cards, 0.2 GiB apart: nothing to warn about
        assert screen.query_one("#multi").display

        await pilot.press("a")  # one GPU
        assert screen.gpus_used() == 1 and screen.gpu.index == 0
        assert "(GPU 0 of 2)" in text(app, "#gpu") and "a: all 2 GPUs" in text(app, "#gpu")
        assert screen.results[name].estimate.total_gb == pytest.approx(one.total_gb)
        assert not screen.query_one("#multi").display
        await pilot.press("t")
        await pilot.pause(0.2)
        [choice] = app.screen.received
        assert choice.gpus == "1" and choice.argv()[-2:] == ["--gpus", "1"]


async def test_mixed_gpus_the_smallest_card_decides():
    app = app_with(MIXED)
    async with app.run_test(size=(120, 40)) as pilot:
        await choose_model(pilot)
        screen = app.screen
        assert screen.gpu.index == 1 and screen.gpu.free_gb == pytest.approx(11.5)
        assert ("2 GPUs: RTX 4090 + RTX 3060 · strategy auto: ddp · per GPU 11.5 GiB free (GPU 1, the smallest)"
                in text(app, "#gpu"))
        budget = 11.5 - screen.backend.margin(screen.gpu)
        for r in screen.results.values():
            assert r.fits == (r.estimate.total_gb <= budget), r.profile.name
        assert not screen.results["lora-8bit"].fits  # 13+ GiB per GPU: not on the 3060
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("qlora-min"))
        await pilot.pause()
        assert "GPU 1 (RTX 3060, 11.5 GiB free) decides: the smallest card" in text(app, "#multi")
        await pilot.press("a")  # the 4090 alone: lora-8bit fits there
        assert screen.gpu.index == 0 and screen.results["lora-8bit"].fits
        await pilot.press("g", *"24", "enter")  # a typed card is one card; a goes back to this machine's GPUs
        assert screen.gpus_used() == 1 and "gpus" not in screen.results["qlora-min"].estimate.details
        await pilot.press("escape", "a")
        assert screen.gpus_used() == 2 and screen.gpu.index == 1


TWO_24GB = machine(("NVIDIA GeForce RTX 4090", 24564, 24064), ("NVIDIA GeForce RTX 4090", 24564, 24064))


def footer_keys(app) -> dict[str, str]:
    return {key: b.binding.description for key, b in app.screen.active_bindings.items() if b.binding.show}


async def test_strategy_auto_picks_fsdp_where_only_the_shards_fit_and_ddp_shows_it_does_not():
    """2 x 24 GiB and a 32B model: qlora-min needs more than a card whole (ddp) but its shards fit (fsdp)."""
    from tunedoc.profiles.estimate import estimate
    from tunedoc.profiles.multi import per_gpu
    from tunedoc.tui.widgets.membar import StackedBar

    app = app_with(TWO_24GB, screens=WITH_TRAIN)
    async with app.run_test(size=(120, 40)) as pilot:
        await choose_model(pilot, "qwen2.5-32b")
        screen = app.screen
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("qlora-min"))
        await pilot.pause()
        one = estimate(screen.model.config, screen.results["qlora-min"].profile, gpu="NVIDIA GeForce RTX 4090")
        ddp, fsdp = per_gpu(one, 2, "ddp").total_gb, per_gpu(one, 2, "fsdp").total_gb
        budget = screen.gpu.free_gb - screen.backend.margin(screen.gpu)
        assert fsdp <= budget < ddp  # the case this test is about

        # auto: fsdp for this profile, and why
        assert screen.strategy == "auto" and footer_keys(app)["S"] == "Strategy auto"
        assert "2 × RTX 4090 · strategy auto: fsdp · per GPU 23.5 GiB free" in text(app, "#gpu")
        result = screen.results["qlora-min"]
        assert result.fits and result.estimate.details["strategy"] == "fsdp"
        assert result.estimate.total_gb == pytest.approx(fsdp)
        multi = text(app, "#multi")
        assert "world size 2 (fsdp)" in multi and f"per GPU {fsdp:.1f} GiB" in multi
        assert "sharded 1/2 (weights, adapter, optimizer)" in multi and "communication (all-gather, NCCL)" in multi
        assert f"strategy auto → fsdp, the whole model needs {ddp:.1f} GiB per GPU" in multi
        bar = screen.query_one("#breakdown", StackedBar)
        assert bar.breakdown["fsdp_gather"] > 0 and bar.labels["quantized_weights"] == "quantized weights 1/2"
        assert "FSDP all-gather" in str(bar.render())
        assert "✓ fits" in text(app, "#verdict")
        # the int8 profile cannot be sharded: auto keeps it on ddp and says so
        strategy, why = screen.picked["lora-8bit"]
        assert strategy == "ddp" and "int8 cannot be sharded" in why

        assert "Profile: strategy ddp" in [c.title for c in screen.palette_commands()]
        await pilot.press("S")  # ddp: each GPU holds the whole model, which does not fit
        assert screen.strategy == "ddp" and screen.current == "qlora-min"  # re-ranked, the cursor stays
        assert footer_keys(app)["S"] == "Strategy ddp" and "· strategy ddp ·" in text(app, "#gpu")
        result = screen.results["qlora-min"]
        assert not result.fits and result.estimate.total_gb == pytest.approx(ddp)
        assert "world size 2 (ddp)" in text(app, "#multi") and "sharded" not in text(app, "#multi")
        assert "GiB over the budget" in text(app, "#verdict")

        await pilot.press("S")  # fsdp for every profile: int8 is shown as not possible
        assert screen.strategy == "fsdp" and footer_keys(app)["S"] == "Strategy fsdp"
        assert screen.results["qlora-min"].fits
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("lora-8bit"))
        await pilot.pause()
        assert not screen.results["lora-8bit"].fits
        assert "not possible under fsdp: int8 weights cannot be sharded" in text(app, "#verdict")
        assert "not possible for int8 weights" in text(app, "#multi")
        table = screen.query_one("#profiles", DataTable)
        assert str(table.get_cell("lora-8bit", "room")) == "no fsdp"

        await pilot.press("S")  # back to auto; t hands the GPUs and the strategy of these figures to Train
        assert screen.strategy == "auto"
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("qlora-min"))
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause(0.2)
        [choice] = app.screen.received
        assert choice.gpus is None and choice.strategy == "fsdp"  # every GPU: train's default
        assert choice.argv()[-2:] == ["--strategy", "fsdp"] and "the whole model needs" in choice.strategy_why


async def test_a_70b_on_two_24gb_cards_fsdp_is_the_closest_and_rank_0_needs_the_cpu_ram_to_load():
    app = app_with(TWO_24GB)
    async with app.run_test(size=(120, 40)) as pilot:
        await choose_model(pilot, "llama-2-70b")
        screen = app.screen
        screen.query_one("#profiles", DataTable).move_cursor(row=rows(app).index("qlora-min"))
        await pilot.pause()
        assert screen.picked["qlora-min"][0] == "fsdp" and not screen.results["qlora-min"].fits
        multi = text(app, "#multi")
        assert "strategy auto → fsdp, the closest to fitting" in multi
        # the low-memory load keeps the GPUs to their shards: the cost moves to rank 0's CPU RAM, which the line names
        assert "rank 0 reads the model into 35.2 GiB of CPU RAM first" in multi


async def test_one_gpu_has_no_strategy_and_hands_none_over():
    app = app_with(TWO_24GB, screens=WITH_TRAIN)
    async with app.run_test(size=(120, 40)) as pilot:
        await choose_model(pilot, "qwen2.5-7b")
        await pilot.press("a")  # one GPU: nothing to share
        screen = app.screen
        assert "S" not in footer_keys(app) and "strategy" not in text(app, "#gpu")
        assert not any("strategy" in c.title for c in screen.palette_commands())
        await pilot.press("S")
        assert screen.strategy == "auto"
        await pilot.press("t")
        await pilot.pause(0.2)
        [choice] = app.screen.received
        assert choice.gpus == "1" and choice.strategy is None and "--strategy" not in choice.argv()


async def test_one_gpu_has_no_all_gpus_key():
    app = app_with()
    async with app.run_test(size=(100, 34)) as pilot:
        await choose_model(pilot)
        assert app.screen.gpus_used() == 1 and not app.screen.check_action("toggle_gpus", ())
        assert "a: all" not in text(app, "#gpu")


# --- snapshots -------------------------------------------------------------------------------------------------
SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_snapshot_fit_on_a_4090(snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)
        await choose_model(pilot)
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(app_with(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_snapshot_no_gpu_typed_vram_and_override(snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("g", *"16", "enter")
        await settle(pilot)
        await choose_model(pilot, "llama-3.1-8b")
        await pilot.press("C")
        await settle(pilot)

    assert snap_compare(app_with(NO_GPU), terminal_size=size, run_before=run_before)


def test_snapshot_mixed_gpus_per_gpu_fit(snap_compare):
    async def run_before(pilot):
        await choose_model(pilot)
        await pilot.press("down", "down")
        await pilot.pause()

    assert snap_compare(app_with(MIXED), terminal_size=(120, 40), run_before=run_before)


def test_snapshot_fsdp_per_gpu_fit(snap_compare):
    """2 x 24 GiB, a 32B model: auto picks fsdp for qlora-min (the sharded parts, the all-gather buffers)."""
    async def run_before(pilot):
        await choose_model(pilot, "qwen2.5-32b")
        pilot.app.screen.query_one("#profiles", DataTable).move_cursor(row=rows(pilot.app).index("qlora-min"))
        await pilot.pause()

    assert snap_compare(app_with(TWO_24GB), terminal_size=(120, 40), run_before=run_before)


@pytest.fixture
def silent_hub(tmp_path, monkeypatch):
    """An endpoint that accepts connections and never answers (an offline box behind a firewall that drops
    packets), and an empty huggingface_hub cache."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import tunedoc.profiles.archs as archs

    # the real one is 5 s; 4 s leaves the checks made while the look-up waits time to run on a loaded box
    monkeypatch.setattr(archs, "HUB_TIMEOUT_S", 4.0)
    yield endpoint
    server.close()


async def test_offline_model_lookup_leaves_the_screen_usable_and_says_the_ways_out(silent_hub, tmp_path):
    import time

    backend = ProfileBackend(probe=lambda: NO_GPU)  # the real config loader, against the silent endpoint
    app = make_app(profile_backend=backend, start="profile", screens=SPECS, clock=lambda: 0.0)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        t0 = time.monotonic()
        await pilot.press("m", *"Qwen/Qwen2.5-7B", "enter")
        await pilot.pause()
        assert screen.pending_model == "Qwen/Qwen2.5-7B", "the look-up is running"
        assert not screen.loading, "a full-screen spinner while the Hub does not answer"
        assert "reading config.json" in text(app, "#model-status")
        await pilot.press("escape", "g")  # the screen answers keys while the worker waits
        await pilot.pause()
        assert screen.has_class("-gpu-edit")
        await app.workers.wait_for_complete()
        await pilot.pause()
        took = time.monotonic() - t0
        status = text(app, "#model-status")
        assert silent_hub.removeprefix("http://") in status and "hf-mirror.com" in status, status
        assert "local folder" in status and "g to type the GPU" in status, status
        assert took < 30, f"gave up after {took:.0f} s"
        widget = screen.query_one("#model-status")
        needed = widget.get_content_height(widget.parent.size, app.size, widget.content_region.width)
        assert needed <= widget.content_region.height, "the message is cut off at 80 columns"
        app.save_screenshot(str(tmp_path / "offline.svg"))
