"""The Models screen: search the Hub (or the HF_ENDPOINT mirror) or ModelScope (`s` switches the source), inspect a
model, download it with live progress, manage both local caches, and continue to the Profile screen with the chosen
model. A ModelScope model is keyed modelscope://owner/name in the cache list and the downloads.

Searches, model info, cache scans and deletions run in screen thread workers. Downloads run in app-level thread
workers (`self.app.run_worker`), so they keep going while another screen is shown; their progress comes back as
messages to this screen (which stays alive as the app's "models" mode) and the download list re-renders from them.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from tunedoc.models.errors import HubError
from tunedoc.models.fmt import human_bytes, human_count
from tunedoc.tui.messages import ModelChosen, hand_off
from tunedoc.tui.models_backend import MS_PREFIX, SOURCE_NAMES, DownloadState, ModelsBackend, is_modelscope
from tunedoc.tui.widgets.dialogs import ConfirmCommands
from tunedoc.tui.widgets.downloads import DownloadList


# --- messages from the workers ----------------------------------------------------------------------------------
class Answer(Message):
    """A worker's result: `what` (search, info, fit, cache, remove), its key (query or repo), and the value or
    the HubError."""

    def __init__(self, what: str, key: str, value=None, error: HubError | None = None) -> None:
        super().__init__()
        self.what, self.key, self.value, self.error = what, key, value, error


class DownloadEvent(Message):
    """A download's plan, progress or end. Progress of the same file coalesces: only the latest is handled."""

    def __init__(self, repo: str, kind: str, value=None, error: HubError | None = None) -> None:
        super().__init__()
        self.repo, self.kind, self.value, self.error = repo, kind, value, error

    def can_replace(self, message: Message) -> bool:
        return (self.kind == "progress" and isinstance(message, DownloadEvent) and message.kind == "progress"
                and message.repo == self.repo and message.value.file == self.value.file)


def _bug(e: Exception) -> HubError:
    return HubError("server", f"unexpected {type(e).__name__}: {e}", "this is a tunedoc bug: please report it")


class ModelsScreen(Screen):
    CSS_PATH = Path(__file__).with_name("models.tcss")
    HELP_TITLE = "Models"
    BINDINGS = [
        Binding("slash", "focus_search", "Search", key_display="/", tooltip="Search the Hub (or the mirror)"),
        Binding("s", "switch_source", "Source", tooltip="Switch the source searched: Hugging Face (or the "
                "HF_ENDPOINT mirror) / ModelScope (MODELSCOPE_DOMAIN)"),
        Binding("l", "toggle_cache", "Cache/Hub", tooltip="Switch between the Hub results and the local cache"),
        Binding("d", "download", "Download", tooltip="Download the highlighted model (resumes partial files)"),
        Binding("x", "cancel_download", "Cancel", tooltip="Cancel the running download (partial files are kept)"),
        Binding("delete,D", "delete", "Delete", key_display="del",
                tooltip="Delete the highlighted model from the local cache, after confirmation"),
        Binding("p", "choose", "Use it", tooltip="Continue to the Profile screen with this model"),
        Binding("escape", "back_to_table", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        try:
            self.backend: ModelsBackend = self.app.backend("models")
        except LookupError:  # the app was built without one: the real engine
            self.backend = ModelsBackend()
        self.hits: list = []
        self.cached: list = []
        self.infos: dict[str, object] = {}  # repo -> ModelInfo or HubError
        self.fits: dict[str, str] = {}
        self.downloads: list[DownloadState] = []  # newest first
        self.search_query: str = ""
        self.searching = False
        self.current: str | None = None

    # --- layout ------------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="endpoint", markup=False)
        with Horizontal(id="search-row"):
            yield Label("Search", classes="field-label")
            yield Input(placeholder="press / and type a model name, e.g. qwen2.5 or llama, then Enter", id="search", compact=True)
            yield Button(self._source_label(), id="source", compact=True,
                         tooltip="s: switch between Hugging Face and ModelScope")
        with Vertical(id="lists"):
            results = DataTable(id="results", cursor_type="row")
            results.border_title = "Hub"
            yield results
            cache = DataTable(id="cache", cursor_type="row")
            cache.border_title = "Local cache"
            yield cache
        with VerticalScroll(id="model-detail"):
            yield Static("", id="info")
        downloads = DownloadList(id="downloads")
        downloads.border_title = "Downloads"
        yield downloads
        yield Footer()

    def on_mount(self) -> None:
        results = self.query_one("#results", DataTable)
        for key, label in (("repo", "model"), ("size", "size"), ("dl", "downloads"), ("license", "license"),
                           ("gated", "gated"), ("arch", "arch")):
            results.add_column(label, key=key)
        cache = self.query_one("#cache", DataTable)
        for key, label in (("repo", "model"), ("source", "source"), ("size", "size"), ("revs", "revs"),
                           ("used", "used"), ("partial", "partial")):
            cache.add_column(label, key=key)
        self._render_source()
        self.query_one("#results", DataTable).focus()  # digits switch screens; / goes to the search box
        self._render_detail()
        self._render_downloads()
        self.refresh_cache()

    def on_unmount(self) -> None:
        for d in self.downloads:  # the app is closing: stop cleanly; partial files resume next time
            d.cancel.set()

    # --- workers -------------------------------------------------------------------------------------------------
    def _work(self, what: str, key: str, call, *args) -> None:
        """In a thread: call the backend, post the answer. Touches no widget."""
        try:
            self.post_message(Answer(what, key, call(*args)))
        except HubError as e:
            self.post_message(Answer(what, key, error=e))

    def _start(self, what: str, key: str, call, *args, exclusive: bool = False) -> None:
        self.run_worker(partial(self._work, what, key, call, *args), thread=True, group=what,
                        name=f"{what}:{key}", exclusive=exclusive, exit_on_error=False)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        """A worker that raised something other than HubError: a bug, shown where its answer would be."""
        if event.state == WorkerState.ERROR:
            what, _, key = event.worker.name.partition(":")
            self.post_message(Answer(what, key, error=_bug(event.worker.error)))

    def on_answer(self, message: Answer) -> None:
        handler = getattr(self, f"_got_{message.what}")
        handler(message)

    # --- source ------------------------------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return getattr(self.backend, "source", "hf")

    def _source_label(self) -> str:
        return f"⇄ {SOURCE_NAMES[self.source]}"

    def _list_title(self) -> str:
        return "ModelScope" if self.source == "modelscope" else "Hub"

    def _render_source(self) -> None:
        """The switch's state: the source, the endpoint in use and what it is, the cache downloads go to."""
        self.query_one("#source", Button).label = self._source_label()
        self.set_class(self.source == "modelscope", "-modelscope")
        self.query_one("#endpoint", Static).update(
            f"{SOURCE_NAMES[self.source]}: {self.backend.endpoint()}  ·  {self.backend.endpoint_note()}  ·  "
            f"cache {self.backend.cache_dir()}")

    def action_switch_source(self) -> None:
        self.backend.set_source("modelscope" if self.source == "hf" else "hf")
        # the same id names different repos on the two sources: nothing found on one is shown for the other
        self.hits, self.infos, self.fits = [], {}, {}
        table = self.query_one("#results", DataTable)
        table.clear()
        table.border_title = self._list_title()
        if not self.has_class("-cache"):
            self.current = None
        self._render_source()
        self._render_detail()
        if self.search_query:  # the last search, asked of the new source
            self.searching = True
            self.set_class(False, "-cache")
            table.border_title = f"{self._list_title()}: searching {self.search_query!r}…"
            self._start("search", self.search_query, self._search_call(), self.search_query, exclusive=True)

    @on(Button.Pressed, "#source")
    def _source_pressed(self) -> None:
        self.action_switch_source()

    def _search_call(self):
        """The search of the current source, with the source in the answer's key (a late answer from the other
        source is dropped)."""
        source, search = self.source, self.backend.search
        return lambda q: (source, search(q))

    # --- search ------------------------------------------------------------------------------------------------
    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        if not query:
            self.notify("type part of a model name, e.g. qwen2.5", severity="warning")
            return
        self.search_query, self.searching = query, True
        self.set_class(False, "-cache")
        self.query_one("#results").border_title = f"{self._list_title()}: searching {query!r}…"
        self._start("search", query, self._search_call(), query, exclusive=True)

    def _got_search(self, m: Answer) -> None:
        if m.key != self.search_query or (m.value is not None and m.value[0] != self.source):
            return
        self.searching = False
        table = self.query_one("#results", DataTable)
        table.clear()
        if m.error:
            self.hits = []
            table.border_title = f"{self._list_title()}: search for {m.key!r} failed"
            self._show_error(m.error)
            return
        self.hits = m.value[1]
        table.border_title = f"{self._list_title()}: {len(self.hits)} results for {m.key!r}"
        for h in self.hits:
            table.add_row(*self._hit_row(h), key=h.id)
        if not self.hits:
            self._set_info(Text(f"nothing on {self.backend.endpoint()} matches {m.key!r}", style="yellow"))
        else:
            table.focus()

    @staticmethod
    def _hit_row(h) -> list:
        gated_, supported, model_type = (getattr(h, k, None) for k in ("gated", "supported", "model_type"))
        gated = Text(str(gated_), style="yellow") if gated_ else Text("no", style="dim")
        if supported:
            arch = Text(f"✓ {model_type}", style="green")
        elif supported is False:
            arch = Text(f"✗ {model_type}", style="red")
        else:
            arch = Text(model_type or "?", style="dim")
        return [h.id, Text(human_bytes(h.size_bytes) if h.size_bytes else "?", justify="right"),
                Text(human_count(h.downloads), justify="right"), h.license or "?", gated, arch]

    # --- detail ------------------------------------------------------------------------------------------------
    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.current = event.row_key.value
        if event.data_table.id == "results" and self.current not in self.infos:
            self._start("info", self.current, self.backend.info, self.current, exclusive=True)
        self._render_detail()

    @on(DataTable.RowSelected)
    async def _row_selected(self) -> None:
        await self.action_choose()

    def _got_info(self, m: Answer) -> None:
        self.infos[m.key] = m.error or m.value
        if m.value is not None:
            self._start("fit", m.key, self.backend.fit_summary, m.value)
        self._render_detail()

    def _got_fit(self, m: Answer) -> None:
        self.fits[m.key] = m.value if m.error is None else f"no fit summary: {m.error.message}"
        self._render_detail()

    def _render_detail(self) -> None:
        detail = self.query_one("#model-detail")
        repo = self.current
        if repo is None:
            detail.border_title = "Model"
            self._set_info(Text(f"Search {SOURCE_NAMES[self.source]} above (/; s switches to "
                                f"{SOURCE_NAMES['hf' if self.source == 'modelscope' else 'modelscope']}), or press l "
                                "for the models already on this disk.\n"
                                "d downloads the highlighted model, p continues to the Profile screen with it.",
                                style="dim"))
            return
        detail.border_title = repo
        if self.has_class("-cache"):
            self._set_info(self._cached_text(repo))
            return
        info = self.infos.get(repo)
        if info is None:
            self._set_info(Text(f"reading {repo}'s files…", style="dim"))
        elif isinstance(info, HubError):
            self._show_error(info)
        else:
            self._set_info(self._info_text(info, self.fits.get(repo)))

    def _info_text(self, mi, fit: str | None) -> Text:
        weights = [f for f in mi.files if f.name.endswith((".safetensors", ".bin", ".gguf", ".pt", ".pth"))]
        t = Text()
        ms = getattr(mi, "source", "hf") == "modelscope"
        model_type, supported, params, gated = (getattr(mi, k, None) for k in ("model_type", "supported", "params",
                                                                                "gated"))
        if ms:
            t.append("ModelScope", style="bold")
        else:
            mark = ("✓", "green") if supported else (("✗", "red") if supported is False else ("?", "dim"))
            t.append(f"{mark[0]} {model_type or '?'}", style=mark[1])
        if params:
            t.append(f" · {params / 1e9:.2f} B params" if params >= 1e8 else f" · {params / 1e6:.1f} M params")
        t.append(f" · license {mi.license or '?'}")
        if gated:
            t.append(f" · gated ({gated}): accept the license at {mi.endpoint}/{mi.repo}", style="yellow")
        where = f"revision {mi.revision}" if ms else f"commit {mi.sha[:10]}"
        t.append(f"\n{len(mi.files)} files, {human_bytes(mi.total_size)}"
                 f" ({len(weights)} weight files, {human_bytes(sum(f.size or 0 for f in weights))})"
                 f" · {where}\n")
        t.append("fit: ", style="bold")
        t.append((fit or "estimating…") + "\n", style="" if fit else "dim")
        for f in sorted(mi.files, key=lambda f: -(f.size or 0)):
            t.append(f"  {human_bytes(f.size):>9}  {f.name}\n", style="" if f in weights else "dim")
        return t

    def _cached(self, key: str):
        return next((c for c in self.cached if _cache_key(c) == key), None)

    def _cached_text(self, repo: str) -> Text:
        m = self._cached(repo)
        if m is None:
            return Text(f"{repo} is not in the cache any more", style="dim")
        t = Text()
        t.append(f"{human_bytes(m.size)} on disk at {m.path}"
                 + (" (ModelScope cache)" if m.source == "modelscope" else "") + "\n")
        if m.incomplete_bytes:
            t.append(f"{human_bytes(m.incomplete_bytes)} of partial downloads: d resumes them\n", style="yellow")
        for r in m.revisions:
            if isinstance(r, str):  # ModelScope: revision names
                t.append(f"  {r}\n")
                continue
            refs = ", ".join(r.refs) or "no ref"
            t.append(f"  {r.commit[:10]} ({refs})  {r.files} files  {human_bytes(r.size)}\n")
        t.append("p: continue to the Profile screen with it · del: delete it", style="dim")
        return t

    def _set_info(self, text: Text) -> None:
        self.query_one("#info", Static).update(text)

    def _show_error(self, e: HubError) -> None:
        t = Text()
        t.append(f"✗ {e.message}", style="bold red")
        if e.hint:
            t.append("\nfix: ", style="bold")
            t.append(e.hint)
        self._set_info(t)

    # --- local cache -------------------------------------------------------------------------------------------
    def refresh_cache(self) -> None:
        self._start("cache", "all", self.backend.list_cache, exclusive=True)

    def _got_cache(self, m: Answer) -> None:
        table = self.query_one("#cache", DataTable)
        table.clear()
        if m.error:
            table.border_title = "Local cache: could not be read"
            self.notify(str(m.error), severity="error", timeout=10)
            return
        self.cached = m.value
        total = sum(c.size for c in self.cached)
        table.border_title = f"Local cache: {len(self.cached)} models, {human_bytes(total)}"
        for c in self.cached:
            partial_ = Text(human_bytes(c.incomplete_bytes), style="yellow") if c.incomplete_bytes else ""
            source = Text("ModelScope", style="magenta") if c.source == "modelscope" else (
                Text("folder", style="dim") if c.source == "folder" else Text("HF", style="dim"))
            table.add_row(c.repo, source, Text(human_bytes(c.size), justify="right"), str(len(c.revisions)),
                          _ago(c.last_used), partial_, key=_cache_key(c))
        if self.has_class("-cache"):
            self._render_detail()

    def action_toggle_cache(self) -> None:
        cache = not self.has_class("-cache")
        self.set_class(cache, "-cache")
        table = self.query_one("#cache" if cache else "#results", DataTable)
        table.focus()
        self.current = None
        if table.row_count:
            self.current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if cache:
            self.refresh_cache()
        self._render_detail()

    def action_delete(self) -> None:
        if not self.has_class("-cache") or self.current is None:
            self.notify("press l for the local cache, then highlight the model to delete", severity="warning")
            return
        repo = self.current
        if any(d.repo == repo and d.active for d in self.downloads):
            self.notify(f"{repo} is downloading: cancel it first (x)", severity="warning")
            return
        m = self._cached(repo)
        size = human_bytes(m.size + m.incomplete_bytes) if m else "?"
        note = f"Frees {size} at {m.path if m else '?'}. Downloading it again takes the full time."

        def done(ok: bool | None) -> None:
            if ok:
                self._start("remove", repo, self.backend.remove, repo)

        self.app.push_screen(ConfirmCommands(f"Delete {repo} from the cache?", [f"tunedoc models rm {repo}"], note),
                             done)

    def _got_remove(self, m: Answer) -> None:
        if m.error:
            self.notify(f"{m.error.message}\nfix: {m.error.hint}", title="Not deleted", severity="error", timeout=10)
        else:
            self.notify(f"deleted {m.key}: {human_bytes(m.value)} freed", title="Cache")
        self.refresh_cache()

    # --- downloads ---------------------------------------------------------------------------------------------
    def action_download(self) -> None:
        repo = self.current
        if repo is None:
            self.notify("search (/) and highlight a model to download", severity="warning")
            return
        if self.source == "modelscope" and not self.has_class("-cache") and not is_modelscope(repo):
            repo = MS_PREFIX + repo  # a ModelScope search result: into the ModelScope cache
        if any(d.repo == repo and d.active for d in self.downloads):
            self.notify(f"{repo} is already downloading", severity="information")
            return
        self.downloads = [d for d in self.downloads if d.repo != repo]
        state = DownloadState(repo)
        self.downloads.insert(0, state)
        # an app-level worker: it outlives switching to another screen
        self.app.run_worker(partial(self._download_job, state), thread=True, group="downloads",
                            name=f"download:{repo}", exit_on_error=False)
        self._render_downloads()

    def _download_job(self, state: DownloadState) -> None:
        """In a thread: plan, then download with progress. Every outcome comes back as a DownloadEvent."""
        repo = state.repo
        try:
            the_plan = self.backend.plan(repo)
            self.post_message(DownloadEvent(repo, "planned", the_plan))
            if state.cancel.is_set():
                raise HubError("cancelled", f"download of {repo} cancelled", "")
            path = self.backend.download(the_plan, lambda pr: self.post_message(DownloadEvent(repo, "progress", pr)),
                                         state.cancel)
            self.post_message(DownloadEvent(repo, "done", str(path)))
        except HubError as e:
            self.post_message(DownloadEvent(repo, "done", error=e))
        except Exception as e:  # noqa: BLE001 - an app-level worker's error would not reach this screen
            self.post_message(DownloadEvent(repo, "done", error=_bug(e)))

    def on_download_event(self, m: DownloadEvent) -> None:
        state = next((d for d in self.downloads if d.repo == m.repo), None)
        if state is None:
            return
        if m.kind == "planned":
            state.planned(m.value)
        elif m.kind == "progress" and state.active:
            state.update(m.value)
        elif m.kind == "done":
            state.finish(m.value, m.error)
            if m.error is None:
                self.notify(f"{m.repo} is ready: p continues to the Profile screen", title="Downloaded")
                self.refresh_cache()
            elif m.error.kind != "cancelled":
                self.notify(m.error.message, title=f"Download of {m.repo} failed", severity="error", timeout=10)
        self._render_downloads()

    def action_cancel_download(self) -> None:
        active = [d for d in self.downloads if d.active]
        target = next((d for d in active if d.repo == self.current), active[0] if active else None)
        if target is None:
            self.notify("no download is running", severity="information")
            return
        target.cancel.set()
        self.notify(f"cancelling {target.repo}; partial files are kept and d resumes them")

    def _render_downloads(self) -> None:
        widget = self.query_one("#downloads", DownloadList)
        widget.show(self.downloads[:4])
        self.set_class(bool(self.downloads), "-downloads")
        active = sum(1 for d in self.downloads if d.active)
        widget.border_title = f"Downloads ({active} running)" if active else "Downloads"

    # --- choose ------------------------------------------------------------------------------------------------
    async def action_choose(self) -> None:
        repo = self.current
        if repo is None:
            self.notify("highlight a model first", severity="warning")
            return
        if is_modelscope(repo) or (self.source == "modelscope" and not self.has_class("-cache")):
            # the Profile screen and training read a ModelScope model from its folder in the ModelScope cache
            from tunedoc.models import modelscope as ms

            name = ms.strip_prefix(repo)[0]
            folder = ms.snapshot_path(name)
            if not (folder / "config.json").is_file():
                self.notify(f"{name} is not in the ModelScope cache yet: d downloads it", severity="warning")
                return
            repo = str(folder)
        if not await hand_off(self.app, "profile", ModelChosen(repo)):
            self.notify(f"tunedoc fit --model {repo}", title="No Profile screen here: run", timeout=10)

    def action_focus_search(self) -> None:
        search = self.query_one("#search", Input)
        search.focus()
        search.select_all()  # typing replaces the last query

    def action_back_to_table(self) -> None:
        self.query_one("#cache" if self.has_class("-cache") else "#results", DataTable).focus()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Models: search the Hub", "Type a model name (/)", self.action_focus_search)
        yield SystemCommand("Models: switch the source", "Hugging Face / ModelScope (s)", self.action_switch_source)
        yield SystemCommand("Models: local cache / Hub results", "Switch the list (l)", self.action_toggle_cache)
        yield SystemCommand("Models: download", "The highlighted model, resuming partial files (d)",
                            self.action_download)
        yield SystemCommand("Models: cancel the download", "Partial files are kept (x)", self.action_cancel_download)
        yield SystemCommand("Models: delete from the cache", "After confirmation (del)", self.action_delete)
        yield SystemCommand("Models: use for training", "Continue to the Profile screen (p)", self.action_choose)


def _cache_key(c) -> str:
    """A cache row's key: the repo id, with modelscope:// for the ModelScope cache (the same id may be in both)."""
    return MS_PREFIX + c.repo if getattr(c, "source", "") == "modelscope" else c.repo


def _ago(ts: float | None) -> str:
    if not ts:
        return "?"
    import time

    s = max(0, time.time() - ts)
    for unit, div in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= div:
            return f"{int(s // div)}{unit} ago"
    return "just now"
