"""The Profile screen: which QLoRA/LoRA profile fits this GPU for the chosen model, and why.

On a machine with several GPUs the fit is per GPU for training on all of them (as `tunedoc train` does by default):
each profile's per-GPU figure (replicated model state + the rank's own micro-batch + communication buffers) against
the smallest card's free memory; `a` switches between all the GPUs and one. `S` cycles the strategy (auto -> ddp ->
fsdp): auto picks per profile as the trainer does (profiles.multi.choose_strategy: ddp when the whole model fits each
GPU, fsdp when only its shards fit) and says why; fsdp shows what is sharded and the all-gather buffers; int8 cannot
be sharded (fit says so). `t` hands the GPUs and the strategy the figures were for to the Train form.

The GPU probe and the model's config.json load in thread workers that post messages. The estimates are arithmetic
on config.json (profiles.estimate, about a millisecond each), so they are recomputed on every key press.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from tunedoc.profiles.fit import FitResult, parts
from tunedoc.profiles.multi import SHARDED
from tunedoc.profiles.profile import Profile
from tunedoc.tui.backends import BackendError
from tunedoc.tui.doctor_model import short_gpu_name
from tunedoc.tui.messages import ModelChosen, TrainingChoice, hand_off
from tunedoc.tui.profile_backend import (
    GpuChoice,
    GpuProbe,
    ModelConfig,
    ProfileBackend,
    deciding,
    parse_gpu,
    tradeoffs,
)
from tunedoc.tui.widgets.membar import SEGMENTS, StackedBar, usage_bar

STRATEGIES = ("auto", "ddp", "fsdp")  # S cycles through them
STRATEGY_HELP = ("Multi-GPU strategy, cycled: auto (ddp when the whole model fits each GPU, fsdp when only its shards "
                 "fit) → ddp (every GPU holds the whole model) → fsdp (weights, adapter and optimizer sharded)")
CUTOFF_RANGE = (128, 131072)
BATCH_RANGE = (1, 256)
RANK_RANGE = (1, 1024)


class GpuProbed(Message):
    def __init__(self, probe: GpuProbe) -> None:
        super().__init__()
        self.probe = probe


class ModelLoaded(Message):
    def __init__(self, model: ModelConfig) -> None:
        super().__init__()
        self.model = model


class ModelFailed(Message):
    def __init__(self, model: str, error: str) -> None:
        super().__init__()
        self.model = model
        self.error = error


class ProfileScreen(Screen):
    CSS_PATH = Path(__file__).with_name("profile.tcss")
    HELP_TITLE = "Profile"
    BINDINGS = [
        Binding("m", "edit_model", "Model", tooltip="Type a model: a local folder, a config.json or a Hub id"),
        Binding("g", "edit_gpu", "GPU", tooltip="Fit for another GPU: type its VRAM in GiB or its name"),
        Binding("a", "toggle_gpus", "1/all GPUs", tooltip="Fit per GPU for training on all this machine's GPUs, "
                "or on one"),
        # one key, three bindings: the footer names the strategy in use; check_action shows the one that leads on
        Binding("S", "strategy('ddp')", "Strategy auto", tooltip=STRATEGY_HELP),
        Binding("S", "strategy('fsdp')", "Strategy ddp", tooltip=STRATEGY_HELP),
        Binding("S", "strategy('auto')", "Strategy fsdp", tooltip=STRATEGY_HELP),
        Binding("c", "cutoff(0.5)", "Cutoff", key_display="c/C", tooltip="Halve the cutoff length (C doubles it)"),
        Binding("C", "cutoff(2)", "Cutoff +", show=False, tooltip="Double the cutoff length"),
        Binding("b", "batch(0.5)", "Batch", key_display="b/B",
                tooltip="Halve the micro-batch (B doubles it); accumulation changes to keep the effective batch"),
        Binding("B", "batch(2)", "Batch +", show=False, tooltip="Double the micro-batch"),
        Binding("r", "rank(0.5)", "Rank", key_display="r/R", tooltip="Halve the LoRA rank (R doubles it)"),
        Binding("R", "rank(2)", "Rank +", show=False, tooltip="Double the LoRA rank"),
        Binding("s", "edit_sets", "Set", show=False, tooltip="Type overrides as key=value (cutoff_len=2048 lora_r=32 ...)"),
        Binding("f", "apply_suggestion", "Fit it", tooltip="Apply the suggested change that makes it fit"),
        Binding("x", "reset", "Reset", show=False, tooltip="Drop this profile's overrides"),
        Binding("t", "train", "Train", tooltip="Continue to training with this model, profile and overrides (and, "
                "on several GPUs, the GPUs and the strategy)"),
        Binding("escape", "back_to_table", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        try:
            self.backend: ProfileBackend = self.app.backend("profile")
        except LookupError:  # the app was built without one: the real engine
            self.backend = ProfileBackend()
        self.gpu: GpuChoice | None = None
        self.gpu_error: str | None = None
        self.gpu_others: list[str] = []
        self.machine: list[GpuChoice] = []  # every probed GPU of this machine
        self.world = 1  # how many of them the fit is for (all by default, as `tunedoc train`)
        self.strategy = "auto"  # auto | ddp | fsdp: how several GPUs share the model (S)
        self.picked: dict[str, tuple[str | None, str | None]] = {}  # profile -> (ddp | fsdp, why) on several GPUs
        self.model: ModelConfig | None = None
        # the model whose config.json a worker is reading (not `loading`: on a Screen that reactive covers the
        # whole screen with a spinner, and nothing can be done while the Hub does not answer)
        self.pending_model: str | None = None
        self.base: list[Profile] = []  # built-ins, in fit order once a model and a GPU are known
        self.sets: dict[str, dict[str, str]] = {}  # profile name -> field -> value text (the --set overrides)
        self.results: dict[str, FitResult | None] = {}
        self.errors: dict[str, str] = {}  # profile name -> why its overrides are invalid
        self.current: str | None = None

    # --- layout ------------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="model-row", classes="field-row"):
            yield Label("Model", classes="field-label")
            yield Input(placeholder="folder, config.json or Hub id (e.g. Qwen/Qwen2.5-7B), then Enter",
                        id="model", compact=True)
        yield Static("", id="model-status", markup=False)
        with Horizontal(id="gpu-row", classes="field-row"):
            yield Label("GPU", classes="field-label")
            yield Static("checking this machine's GPU…", id="gpu", markup=False)
            yield Input(placeholder="VRAM in GiB (24) or a GPU name (RTX 4090), then Enter", id="gpu-input",
                        compact=True)
        table = DataTable(id="profiles", cursor_type="row", zebra_stripes=False)
        table.border_title = "Profiles"
        yield table
        with VerticalScroll(id="profile-detail"):
            yield Static("", id="description", markup=False)
            yield StackedBar(id="breakdown")
            yield Static("", id="multi")
            yield Static("", id="knobs")
            with Horizontal(id="sets-row", classes="field-row"):
                yield Label("--set", classes="field-label")
                yield Input(placeholder="key=value … (s to edit)", id="sets", compact=True)
            yield Static("", id="verdict")
            yield Static("", id="tradeoffs", markup=False)
            yield Static("", id="command", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#profiles", DataTable)
        for key, label in (("mark", ""), ("name", "profile"), ("bar", "use of free VRAM"), ("est", "estimate"),
                           ("room", "headroom"), ("setup", "setup")):
            table.add_column(label, key=key)
        self.base = self.backend.profiles()
        self.query_one("#profile-detail").border_title = "Breakdown"
        table.focus()  # not the model input: digits switch screens, letters are this screen's keys
        self.run_worker(self._probe_gpu, thread=True, group="gpu", name="gpu", exit_on_error=False)
        self._render_all()

    # --- workers (threads: call the backend, post a message, touch no widget) ----------------------------------
    def _probe_gpu(self) -> None:
        self.post_message(GpuProbed(self.backend.probe_gpu()))

    def _load_model(self, model: str) -> None:
        try:
            self.post_message(ModelLoaded(self.backend.load_model(model)))
        except BackendError as e:
            self.post_message(ModelFailed(model, str(e)))

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        reason = f"{type(error).__name__}: {error}"
        if event.worker.name == "gpu":
            self.post_message(GpuProbed(GpuProbe(None, f"the GPU probe crashed ({reason})")))
        else:
            self.post_message(ModelFailed(event.worker.name.partition(":")[2], f"could not read it ({reason})"))

    def on_gpu_probed(self, message: GpuProbed) -> None:
        if self.gpu is not None and self.gpu.source != "probe":
            return  # the user already typed one
        self.gpu, self.gpu_error, self.gpu_others = message.probe.gpu, message.probe.error, message.probe.others
        self.machine = list(message.probe.gpus)
        self.world = len(self.machine) or 1
        if self.world > 1:
            self.gpu = deciding(self.machine)
        # no focus change here: the probe answers seconds later and must not steal what the user is typing
        self._refit(reorder=True)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.model.model != self.pending_model:
            return  # a newer request superseded this one
        self.pending_model = None
        self.model = message.model
        self._refit(reorder=True)
        self.query_one("#profiles", DataTable).focus()

    def on_model_failed(self, message: ModelFailed) -> None:
        if message.model != self.pending_model:
            return
        self.pending_model = None
        self.model = None
        self.results = {}
        self.query_one("#model-status", Static).update(f"✗ {message.error}")
        self.query_one("#model-status").set_class(True, "-error")
        self._render_all(status=False)

    def on_model_chosen(self, message: ModelChosen) -> None:
        """From the Models screen."""
        self.query_one("#model", Input).value = message.model
        self.start_load(message.model)

    def start_load(self, model: str) -> None:
        model = model.strip()
        if not model:
            self.query_one("#model-status", Static).update(
                "type a model: a local folder, a config.json or a Hub id such as Qwen/Qwen2.5-7B")
            return
        self.pending_model = model
        status = self.query_one("#model-status", Static)
        status.set_class(False, "-error")
        status.update(f"reading config.json of {model}…")
        self.run_worker(partial(self._load_model, model), thread=True, group="model", name=f"model:{model}",
                        exclusive=True, exit_on_error=False)

    # --- inputs ------------------------------------------------------------------------------------------------
    @on(Input.Submitted, "#model")
    def _model_submitted(self, event: Input.Submitted) -> None:
        self.start_load(event.value)

    @on(Input.Submitted, "#gpu-input")
    def _gpu_submitted(self, event: Input.Submitted) -> None:
        try:
            self.gpu = parse_gpu(event.value)
        except BackendError as e:
            self.query_one("#gpu", Static).update(f"✗ {e}")
            return
        self.world = 1  # a typed card is one card
        self.set_class(False, "-gpu-edit")
        self._refit(reorder=True)
        self.query_one("#profiles", DataTable).focus()

    @on(Input.Changed, "#sets")
    def _sets_changed(self, event: Input.Changed) -> None:
        if self.current is None:
            return
        parsed: dict[str, str] = {}
        bad = []
        for item in event.value.split():
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                bad.append(item)
            else:
                parsed[key.strip()] = value.strip()
        if bad:
            self.errors[self.current] = f"{' '.join(bad)}: write key=value, e.g. cutoff_len=2048"
            self._render_detail()
            return
        self.sets[self.current] = parsed
        self._refit()

    @on(Input.Submitted, "#sets")
    def _sets_submitted(self) -> None:
        self.query_one("#profiles", DataTable).focus()

    @on(DataTable.RowHighlighted, "#profiles")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.current = event.row_key.value
        self._render_detail()

    @on(DataTable.RowSelected, "#profiles")
    async def _row_selected(self) -> None:
        await self.action_train()

    # --- actions -----------------------------------------------------------------------------------------------
    def action_edit_model(self) -> None:
        self.query_one("#model", Input).focus()

    def action_edit_gpu(self) -> None:
        self.set_class(True, "-gpu-edit")
        self._render_gpu()
        self.query_one("#gpu-input", Input).focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "toggle_gpus":
            return len(self.machine) > 1
        if action == "strategy":  # the binding that leads from the strategy in use to the next
            return self.gpus_used() > 1 and parameters == (_next_strategy(self.strategy),)
        return True

    def action_strategy(self, strategy: str) -> None:
        """auto -> ddp -> fsdp (S); the rows re-rank, the cursor stays on its profile."""
        if strategy not in STRATEGIES or self.gpus_used() < 2:
            return
        self.strategy = strategy
        self._refit(reorder=True, keep_current=True)

    def action_toggle_gpus(self) -> None:
        """All this machine's GPUs (the per-GPU fit, the smallest card deciding) or the first one; back to this
        machine's GPUs after a typed one."""
        if len(self.machine) < 2:
            return
        typed = self.gpu is None or self.gpu.source != "probe"
        self.world = len(self.machine) if typed or self.world == 1 else 1
        self.gpu = deciding(self.machine) if self.world > 1 else self.machine[0]
        self.set_class(False, "-gpu-edit")
        self._refit(reorder=True)

    def gpus_used(self) -> int:
        """How many GPUs the fit is for: several only for this machine's probed GPUs."""
        return self.world if self.gpu is not None and self.gpu.source == "probe" else 1

    def action_edit_sets(self) -> None:
        if self.current:
            self.query_one("#sets", Input).focus()

    def action_back_to_table(self) -> None:
        if self.gpu is not None:
            self.set_class(False, "-gpu-edit")
        self.query_one("#profiles", DataTable).focus()

    def _profile(self, name: str) -> Profile:
        """The built-in profile `name` with this screen's overrides (the last valid ones)."""
        base = next(p for p in self.base if p.name == name)
        sets = self.sets.get(name) or {}
        return base.with_overrides([f"{k}={v}" for k, v in sets.items()]) if sets else base

    def _adjust(self, **changes: int) -> None:
        if self.current is None or self.model is None:
            self.notify("load a model first (m)", severity="warning")
            return
        sets = dict(self.sets.get(self.current) or {})
        sets.update({k: str(v) for k, v in changes.items()})
        self.sets[self.current] = sets
        self._refit()
        self._show_sets()

    def action_cutoff(self, factor: float) -> None:
        if self.current is None:
            return
        p = self._profile(self.current)
        self._adjust(cutoff_len=_clamp(int(p.cutoff_len * factor), *CUTOFF_RANGE))

    def action_batch(self, factor: float) -> None:
        if self.current is None:
            return
        p = self._profile(self.current)
        mb = _clamp(int(p.micro_batch * factor), *BATCH_RANGE)
        # keep the effective batch where accumulation allows it
        accum = max(1, p.effective_batch // mb) if mb != p.micro_batch else p.grad_accum
        self._adjust(micro_batch=mb, grad_accum=accum)

    def action_rank(self, factor: float) -> None:
        if self.current is None:
            return
        p = self._profile(self.current)
        r = _clamp(int(p.lora_r * factor), *RANK_RANGE)
        ratio = p.lora_alpha / p.lora_r if p.lora_r else 2
        self._adjust(lora_r=r, lora_alpha=max(1, round(r * ratio)))

    def action_apply_suggestion(self) -> None:
        result = self.results.get(self.current or "")
        if result is None or not result.changes:
            self.notify("no suggested change for this profile", severity="information")
            return
        self._adjust(**result.changes)

    def action_reset(self) -> None:
        if self.current is None:
            return
        self.sets.pop(self.current, None)
        self.errors.pop(self.current, None)
        self._refit()
        self._show_sets()

    async def action_train(self) -> None:
        if self.current is None or self.model is None:
            self.notify("choose a model and a profile first", severity="warning")
            return
        result = self.results.get(self.current)
        if result is not None and not result.fits:
            self.notify(f"{self.current} is estimated not to fit: the trainer will step down on out-of-memory, "
                        f"or press f for the suggested change", severity="warning", timeout=8)
        choice = self.choice()
        if not await hand_off(self.app, "train", choice):
            command = "tunedoc train " + " ".join(_quote(a) for a in choice.argv()) + " --data DATA"
            self.app.copy_to_clipboard(command)
            self.notify(f"{command}\n(copied to the clipboard)", title="No Train screen here: run",
                        timeout=15)

    def choice(self) -> TrainingChoice:
        assert self.current is not None and self.model is not None
        sets = [f"{k}={v}" for k, v in (self.sets.get(self.current) or {}).items()]
        # one GPU of several is `--gpus 1`; all of them is train's default
        one = len(self.machine) > 1 and self.gpus_used() == 1 and self.gpu is not None and self.gpu.source == "probe"
        # several: the strategy these figures are for (auto as it decided here, so the run is the one shown)
        strategy, why = self.picked.get(self.current, (None, None)) if self.gpus_used() > 1 else (None, None)
        if strategy is not None and self.strategy != "auto":
            why = f"strategy {self.strategy}: chosen on the Profile screen"
        return TrainingChoice(self.model.model, self.current, sets, gpus="1" if one else None, strategy=strategy,
                              strategy_why=why)

    # --- the numbers -------------------------------------------------------------------------------------------
    def _refit(self, reorder: bool = False, keep_current: bool = False) -> None:
        """Recompute every profile's estimate and fit; reorder the rows by the fit ranking only on a new model,
        GPU or strategy, so rows do not jump while the user adjusts one. Several GPUs: each profile under the
        strategy chosen (auto decides per profile)."""
        self.results = {}
        self.picked = {}
        if self.model is not None:
            for base in self.base:
                try:
                    profile = self._profile(base.name)
                    self.errors.pop(base.name, None)
                except ValueError as e:  # ProfileError: the typed overrides are invalid; show the profile as built
                    problems = "; ".join(getattr(e, "problems", None) or [str(e)])
                    self.errors[base.name] = f"{problems} (shown without overrides)"
                    self.sets[base.name] = {}
                    profile = base
                result, strategy, why = self.backend.fit_strategy(self.model.config, profile, self.gpu,
                                                                  self.gpus_used(), self.strategy)
                self.results[base.name] = result
                self.picked[base.name] = (strategy, why)
            if reorder and self.gpu is not None:
                rank = {r.profile.name: i for i, r in enumerate(self.backend.ranked(
                    [r for r in self.results.values() if r is not None]))}
                self.base.sort(key=lambda p: rank.get(p.name, 99))
                if not keep_current or self.current not in rank:
                    self.current = self.base[0].name if self.base else None  # the best fit first
        self._render_all()

    # --- rendering ---------------------------------------------------------------------------------------------
    def _render_all(self, status: bool = True) -> None:
        self._render_gpu()
        if status:
            self._render_model_status()
        self._render_table()
        self._render_detail()
        self.refresh_bindings()

    def _render_gpu(self) -> None:
        gpu = self.query_one("#gpu", Static)
        if self.gpu is not None and self.gpus_used() > 1:
            gpu.update(_machine_label(self.machine, self.gpu, self._strategy_words())
                       + "   a: one GPU  S: strategy  g: another")
            gpu.set_class(False, "-error")
        elif self.gpu is not None:
            n = len(self.machine)
            more = (f" (GPU {self.gpu.index} of {n})   a: all {n} GPUs" if n > 1 and self.gpu.source == "probe"
                    else f" (+{len(self.gpu_others)} more)" if self.gpu_others else "")
            gpu.update(self.gpu.label() + more + "   g: another")
            gpu.set_class(False, "-error")
        elif self.gpu_error:
            prompt = "type its VRAM or name:" if self.has_class("-gpu-edit") else "g: type a VRAM or GPU name"
            gpu.update(f"no GPU here ({self.gpu_error}); {prompt}")
            gpu.set_class(True, "-error")

    def _render_model_status(self) -> None:
        status = self.query_one("#model-status", Static)
        if self.pending_model:
            return
        status.set_class(False, "-error")
        if self.model is None:
            status.update("no model yet: m to type one, or choose one on the Models screen (2)")
            return
        m = self.model
        params = ""
        if m.params:
            params = f" · {m.params / 1e9:.2f} B parameters" if m.params >= 1e8 else f" · {m.params / 1e6:.1f} M parameters"
        status.update(f"{m.model_type}{params} · from config.json alone, no weights needed")

    def _bar_width(self) -> int:
        return max(8, min(40, self.size.width - 68))

    def _render_table(self) -> None:
        table = self.query_one("#profiles", DataTable)
        keep = self.current
        table.clear()
        width = self._bar_width()
        for base in self.base:
            result = self.results.get(base.name)
            table.add_row(*self._row(base.name, result, width), key=base.name)
        if self.base:
            names = [p.name for p in self.base]
            table.move_cursor(row=names.index(keep) if keep in names else 0, animate=False)
            self.current = names[table.cursor_row]

    def _row(self, name: str, result: FitResult | None, width: int) -> list:
        edited = "*" if self.sets.get(name) else ""
        label = Text(name + edited, no_wrap=True)
        if result is None:
            return [Text("·", style="dim"), label, Text("·" * width, style="dim"), "", "", ""]
        p, est = result.profile, result.estimate
        setup = f"{p.quant} {p.cutoff_len}×{p.micro_batch} r{p.lora_r}"
        total = Text(f"{est.total_gb:.1f} GiB", justify="right")
        if self.gpu is None:
            return [Text("?", style="dim"), label, Text("type a VRAM (g)", style="dim"), total, "", setup]
        budget = self.gpu.free_gb - self.backend.margin(self.gpu)
        mark = Text("✓", style="bold green") if result.fits else Text("✗", style="bold red")
        room = Text(f"{result.headroom_gb:+.1f}", style="green" if result.fits else "red", justify="right")
        if self._not_possible(name):  # int8 under fsdp: its ddp figure may have room, but the run cannot start
            room = Text("no fsdp", style="red", justify="right")
        return [mark, label, usage_bar(est.total_gb, self.gpu.free_gb, budget, width), total, room, setup]

    def _render_detail(self) -> None:
        detail = self.query_one("#profile-detail")
        result = self.results.get(self.current or "")
        self.set_class(result is not None, "-has-detail")
        if self.current is None or result is None:
            detail.border_title = "Breakdown"
            return
        p, est = result.profile, result.estimate
        detail.border_title = f"{p.name}: {est.total_gb:.1f} GiB"
        self.query_one("#description", Static).update(p.description or "")
        if self.gpu is not None:
            budget = self.gpu.free_gb - self.backend.margin(self.gpu)
            labels = ({k: f"{label} 1/{self.gpus_used()}" for k, _, label in SEGMENTS if k in SHARDED}
                      if est.details.get("strategy") == "fsdp" else None)
            self.query_one("#breakdown", StackedBar).show(est.breakdown, self.gpu.free_gb, budget, labels)
        else:
            self.query_one("#breakdown", StackedBar).show(est.breakdown, 0.0, 0.0)
        multi = self.query_one("#multi", Static)
        self.set_class(self.gpus_used() > 1, "-multi")
        multi.update(self._multi_text(p, est) if self.gpus_used() > 1 else "")
        knobs = Text.assemble(
            ("cutoff ", "dim"), (f"{p.cutoff_len}", "bold"), (" [c/C]   ", "dim"),
            ("micro-batch ", "dim"), (f"{p.micro_batch}", "bold"), (f" ×{p.grad_accum} accum", ""), (" [b/B]   ", "dim"),
            ("rank ", "dim"), (f"{p.lora_r}", "bold"), (f" α{p.lora_alpha}", ""), (" [r/R]", "dim"))
        self.query_one("#knobs", Static).update(knobs)
        verdict = self.query_one("#verdict", Static)
        error = self.errors.get(p.name)
        if error:
            verdict.update(Text(f"✗ {error}", style="red"))
        elif self.gpu is None:
            verdict.update(Text("no GPU chosen: g to type its VRAM or name", style="yellow"))
        elif result.fits:
            extra = f"; {result.suggestion} (f applies it)" if result.suggestion else ""
            verdict.update(Text(f"✓ fits with {result.headroom_gb:.1f} GiB headroom after a "
                                f"{self.backend.margin(self.gpu):.1f} GiB margin{extra}", style="green"))
        elif self._not_possible(p.name):
            verdict.update(Text(f"✗ not possible under fsdp: {result.suggestion} (S for another strategy"
                                + (", f applies the change)" if result.changes else ")"), style="red"))
        else:
            verdict.update(Text(f"✗ {-result.headroom_gb:.1f} GiB over the budget: {result.suggestion}"
                                + (" (f applies it)" if result.changes else ""), style="red"))
        self.query_one("#tradeoffs", Static).update("\n".join(f"• {line}" for line in tradeoffs(p, est)))
        if self.model is not None:
            cmd = "tunedoc train " + " ".join(_quote(a) for a in self.choice().argv())
            self.query_one("#command", Static).update(f"t: continue to training  ({cmd})")
        self._show_sets()

    def _multi_text(self, p: Profile, est) -> Text:
        """The per-GPU figure of training on this machine's GPUs: world size, the shares, the deciding card."""
        n = self.gpus_used()
        share = parts(est)
        fsdp = est.details.get("strategy") == "fsdp"
        words = {"replicated": "replicated (quant constants)" if fsdp else "replicated (weights, adapter, optimizer)",
                 "sharded": f"sharded 1/{n} (weights, adapter, optimizer)",
                 "per_rank": "per rank (its micro-batch, context)",
                 "communication": "communication (all-gather, NCCL)" if fsdp else "communication (DDP buckets, NCCL)"}
        text = Text.assemble(
            ("world size ", "dim"), (f"{n}", "bold"), (f" ({est.details.get('strategy', 'ddp')})", ""),
            ("   per GPU ", "dim"), (f"{est.total_gb:.1f} GiB", "bold"), (" = ", "dim"),
            Text(" + ").join(Text.assemble((f"{v:.1f}", "bold"), f" {words.get(k, k)}") for k, v in share.items()),
            ("\nglobal batch ", "dim"), f"{p.micro_batch} × {p.grad_accum} × {n} = {p.micro_batch * p.grad_accum * n}",
            ("   cards: ", "dim"),
            ", ".join(f"GPU {g.index} {_short(g.name)} {g.free_gb:.1f} GiB free" for g in self.machine[:n]))
        text.append("\n")
        text.append_text(self._strategy_text(p, est))
        cards = self.machine[:n]
        # a different card, or one with much less free memory (a desktop on it), leaves the others' rest unused
        if self.gpu is not None and (len({g.name for g in cards}) > 1
                                     or max(g.free_gb for g in cards) - self.gpu.free_gb >= 1.0):
            text.append(f"\nGPU {self.gpu.index} ({_short(self.gpu.name)}, {self.gpu.free_gb:.1f} GiB free) decides: "
                        "the smallest card; the others keep the rest unused", style="yellow")
        return text

    def _not_possible(self, name: str) -> bool:
        """int8 under fsdp: trainer/fsdp.py refuses it; fit marks it not fitting and gives its ddp figure."""
        result = self.results.get(name)
        return (result is not None and not result.fits and result.profile.quant == "int8"
                and self.picked.get(name, (None, None))[0] == "fsdp")

    def _strategy_words(self) -> str:
        """The GPU line's strategy: "strategy auto: fsdp" (what auto picked for the profile under the cursor), or
        the one chosen ("strategy ddp")."""
        picked = self.picked.get(self.current or "", (None, None))[0]
        if self.strategy == "auto":
            return f"strategy auto: {picked}" if picked else "strategy auto"
        return f"strategy {self.strategy}"

    def _strategy_text(self, p: Profile, est) -> Text:
        """One line on the strategy: auto's choice and its reason, or what the chosen one does here."""
        strategy, why = self.picked.get(p.name, (None, None))
        if self._not_possible(p.name):
            return Text(f"strategy fsdp: not possible for {p.quant} weights (they cannot be sharded); the figures are "
                        "ddp's: S for another strategy, or f for --set quant=nf4", style="red")
        if self.strategy == "auto" and why:
            line = Text(why.replace("strategy auto: ", "strategy auto → ", 1))
        elif strategy == "fsdp":
            line = Text("strategy fsdp: weights, adapter, gradients and optimizer states sharded over the GPUs; the "
                        "root and two layers gathered at a time")
        else:
            line = Text("strategy ddp: every GPU holds the whole model and its adapter; LoRA gradients all-reduced")
        loading = est.details.get("load_gb") or 0.0  # per_gpu's fsdp figure: a GPU's peak during the low-memory load
        if strategy == "fsdp" and self.gpu is not None and loading > self.gpu.free_gb and "loading" not in line.plain:
            line.append(f"; but loading holds {loading:.1f} GiB on each GPU (its shards and one layer whole) of "
                        f"{self.gpu.free_gb:.1f} free: it will run out of memory while loading", style="yellow")
        elif strategy == "fsdp" and est.details.get("load_cpu_gb") and "CPU RAM" not in line.plain:
            line.append(f"; rank 0 reads the model into {est.details['load_cpu_gb']:.1f} GiB of CPU RAM first", style="dim")
        return line

    def _show_sets(self) -> None:
        sets_input = self.query_one("#sets", Input)
        if self.current is None or self.focused is sets_input:
            return
        text = " ".join(f"{k}={v}" for k, v in (self.sets.get(self.current) or {}).items())
        if sets_input.value != text:
            with sets_input.prevent(Input.Changed):
                sets_input.value = text

    def on_resize(self) -> None:
        self._render_table()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Profile: choose a model", "Type a folder, config.json or Hub id (m)",
                            self.action_edit_model)
        yield SystemCommand("Profile: choose a GPU", "Type a VRAM size or a GPU name (g)", self.action_edit_gpu)
        yield SystemCommand("Profile: apply the suggested change", "The change that makes it fit (f)",
                            self.action_apply_suggestion)
        yield SystemCommand("Profile: reset overrides", "Back to the built-in profile (x)", self.action_reset)
        yield SystemCommand("Profile: continue to training", "With this model, profile and overrides (t)",
                            self.action_train)
        if self.gpus_used() > 1:
            nxt = _next_strategy(self.strategy)
            yield SystemCommand(f"Profile: strategy {nxt}", f"How the GPUs share the model, now {self.strategy} (S)",
                                lambda: self.action_strategy(nxt))


def _short(name: str | None) -> str:
    return short_gpu_name(name or "GPU")


def _machine_label(machine: list[GpuChoice], decides: GpuChoice, strategy: str = "") -> str:
    """The GPU line for the per-GPU fit on all of `machine` (with `strategy`, e.g. "strategy auto: fsdp")."""
    n = len(machine)
    if len({g.name for g in machine}) == 1:
        head = f"{n} × {_short(decides.name)}"
    else:
        head = f"{n} GPUs: " + " + ".join(_short(g.name) for g in machine)
    if strategy:
        head += f" · {strategy}"
    return f"{head} · per GPU {decides.free_gb:.1f} GiB free (GPU {decides.index}, the smallest)"


def _next_strategy(strategy: str) -> str:
    return STRATEGIES[(STRATEGIES.index(strategy) + 1) % len(STRATEGIES)]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
