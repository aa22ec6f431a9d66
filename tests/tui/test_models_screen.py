"""The Models screen: pilot tests with a scripted Hub (FakeModelsBackend), one download through the real models
engine against tests/models/fakehub.py, and snapshots at 80x24/120x40 (update with --snapshot-update, then LOOK).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from tunedoc.models.cache import CachedModel, CachedRevision
from tunedoc.models.download import Progress
from tunedoc.models.errors import HubError, gated_error
from tunedoc.models.hub import ModelHit, ModelInfo, RepoFileEntry
from tunedoc.tui.app import make_app
from tunedoc.tui.models_backend import FakeModelsBackend, ModelsBackend
from tunedoc.tui.profile_backend import GpuChoice, GpuProbe, ProfileBackend
from tunedoc.tui.screens import ScreenSpec
from tunedoc.tui.widgets.dialogs import ConfirmCommands

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from fakehub import FakeHub, FakeRepo, tiny_llama_files  # noqa: E402

GB = 1_000_000_000
RTX4090 = GpuProbe(GpuChoice("NVIDIA GeForce RTX 4090", 22.5, 24.0, "probe"))
SPECS = [ScreenSpec("models", "Models", "2", "tunedoc.tui.screens.models:ModelsScreen"),
         ScreenSpec("profile", "Profile", "3", "tunedoc.tui.screens.profile:ProfileScreen")]

HITS = [
    ModelHit("Qwen/Qwen2.5-7B-Instruct", downloads=2_400_000, license="apache-2.0", gated=False,
             size_bytes=int(15.2 * GB), model_type="qwen2", supported=True),
    ModelHit("Qwen/Qwen2.5-0.5B", downloads=910_000, license="apache-2.0", gated=False,
             size_bytes=int(0.99 * GB), model_type="qwen2", supported=True),
    ModelHit("meta-llama/Llama-3.1-8B", downloads=5_100_000, license="llama3.1", gated="manual",
             size_bytes=int(16.1 * GB), model_type="llama", supported=True),
    ModelHit("state-spaces/mamba-qwen-2.8b", downloads=1200, license="apache-2.0", gated=False,
             size_bytes=int(5.6 * GB), model_type="mamba", supported=False),
]
FILES = [RepoFileEntry("model-00001-of-00004.safetensors", int(3.95 * GB)),
         RepoFileEntry("model-00002-of-00004.safetensors", int(3.86 * GB)),
         RepoFileEntry("model-00003-of-00004.safetensors", int(3.86 * GB)),
         RepoFileEntry("model-00004-of-00004.safetensors", int(3.56 * GB)),
         RepoFileEntry("config.json", 663), RepoFileEntry("tokenizer.json", 7_031_645)]
INFO = ModelInfo("Qwen/Qwen2.5-7B-Instruct", "a09a35458c702b33eeacc393d103063234e8bc28", None,
                 "https://huggingface.co", files=FILES, license="apache-2.0", gated=False, model_type="qwen2",
                 downloads=2_400_000, params=7_615_616_512, supported=True)
CACHED = [CachedModel("Qwen/Qwen2.5-0.5B", int(0.99 * GB), "/home/ana/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B",
                      [CachedRevision("060db6499f32faf8b98477b0a26969ef7d8b9987", ["main"], int(0.99 * GB), 9, "")],
                      last_used=None),
          CachedModel("org/half-done", 200_000_000, "/home/ana/.cache/huggingface/hub/models--org--half-done",
                      [], incomplete_bytes=800_000_000)]


def progress(done: int) -> Progress:
    return Progress(file="model-00001-of-00004.safetensors", file_done=done, file_total=int(3.95 * GB),
                    done=done + int(3.86 * GB), total=int(15.23 * GB), speed_bps=48_200_000,
                    eta_s=(15.23 * GB - done - 3.86 * GB) / 48_200_000, files_done=1, files_total=5)


def fake(**kw) -> FakeModelsBackend:
    base = dict(hits=HITS, infos={"Qwen/Qwen2.5-7B-Instruct": INFO}, cached=CACHED,
                info_errors={"meta-llama/Llama-3.1-8B": gated_error("meta-llama/Llama-3.1-8B",
                                                                     "https://huggingface.co", False)},
                plan_files=[(f.name, f.size) for f in FILES if f.size], progress=[progress(1_200_000_000)])
    base.update(kw)
    return FakeModelsBackend(**base)


def app_with(backend, screens=SPECS):
    return make_app(models_backend=backend, profile_backend=ProfileBackend(probe=lambda: RTX4090),
                    start="models", screens=screens, clock=lambda: 0.0)


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def search(pilot, query: str = "qwen") -> None:
    if type(pilot.app.focused).__name__ == "Input":  # still in the box after a failed search
        pilot.app.screen.action_focus_search()
    else:
        await pilot.press("slash")
    await pilot.press(*query, "enter")
    await settle(pilot)


def info_text(app) -> str:
    return str(app.screen.query_one("#info", Static).render())


def models_screen(app):
    from tunedoc.tui.screens.models import ModelsScreen

    return next(s for s in app._screen_stacks["models"] if isinstance(s, ModelsScreen))


async def test_search_results_and_detail_with_files_and_fit():
    backend = fake()
    app = app_with(backend)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        assert "https://huggingface.co" in str(app.screen.query_one("#endpoint", Static).render())
        await search(pilot)
        table = app.screen.query_one("#results", DataTable)
        assert backend.searched == ["qwen"]
        assert [r.key.value for r in table.ordered_rows] == [
            "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-0.5B", "state-spaces/mamba-qwen-2.8b"]
        assert "3 results for 'qwen'" in table.border_title
        row = [str(c) for c in table.get_row("state-spaces/mamba-qwen-2.8b")]
        assert row[1] == "5.6 GB" and "✗ mamba" in row[5]  # the estimator does not know this architecture
        await settle(pilot)
        text = info_text(app)
        assert "7.62 B params" in text and "license apache-2.0" in text
        assert "6 files, 15.2 GB" in text and "model-00001-of-00004.safetensors" in text
        assert "fit: on RTX 4090 (22.5 GiB free): qlora-min 5.1 GiB" in text


async def test_gated_and_network_errors_show_their_fix():
    backend = fake(search_error=HubError("network", "could not reach https://huggingface.co",
                                         "set HF_ENDPOINT to a mirror, e.g. `export HF_ENDPOINT=https://hf-mirror.com`"))
    app = app_with(backend)
    async with app.run_test(size=(100, 34)) as pilot:
        await search(pilot)
        assert "could not reach" in info_text(app) and "fix: set HF_ENDPOINT" in info_text(app)
        backend.search_error = None
        await search(pilot, "llama")
        text = info_text(app)
        assert "is gated" in text and "accept the license at https://huggingface.co/meta-llama/Llama-3.1-8B" in text


async def test_download_keeps_going_on_another_screen_and_can_be_cancelled():
    backend = fake(hold=True)
    app = app_with(backend)
    async with app.run_test(size=(100, 34)) as pilot:
        await search(pilot)
        await pilot.press("d")
        for _ in range(50):
            await pilot.pause(0.02)
            if backend.downloaded:
                break
        screen = app.screen
        [state] = screen.downloads
        assert state.status == "downloading" and state.done == 1_200_000_000 + int(3.86 * GB)
        lines = str(screen.query_one("#downloads").render())
        assert "33%" in lines and "48.2 MB/s" in lines and "1/5 files" in lines
        assert "model-00001-of-00004.safetensors" in lines  # the file in flight has its own bar
        # the download is an app-level worker: switching screens does not stop it
        assert all(w.node is app for w in app.workers if w.group == "downloads")
        await pilot.press("3")
        await pilot.pause(0.1)
        assert app.current_mode == "profile"
        backend.release()
        await pilot.pause(0.3)
        await pilot.press("2")
        await pilot.pause(0.1)
        assert state.status == "done" and state.done == state.total
        assert "✓ Qwen/Qwen2.5-7B-Instruct" in str(screen.query_one("#downloads").render())
        # a second one, cancelled: the partial files stay for a resume
        backend._release.clear()
        await pilot.press("d")
        await pilot.pause(0.2)
        await pilot.press("x")
        await settle(pilot)
        assert backend.cancelled.is_set() and screen.downloads[0].status == "cancelled"
        assert "d downloads it again and resumes" in str(screen.query_one("#downloads").render())


async def test_cache_listing_and_delete_after_confirmation():
    backend = fake()
    app = app_with(backend)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        table = app.screen.query_one("#cache", DataTable)
        assert table.display and "2 models" in table.border_title
        assert "800.0 MB of partial downloads" not in info_text(app)  # first row: the complete one
        assert "990.0 MB on disk" in info_text(app)
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmCommands)
        await pilot.press("escape")  # cancelled: nothing deleted
        await pilot.pause()
        assert backend.removed == []
        await pilot.press("delete")
        await pilot.pause()
        assert "tunedoc models rm Qwen/Qwen2.5-0.5B" in str(app.screen.query_one(".dialog-commands").render())
        await pilot.click("#run")
        await settle(pilot)
        assert backend.removed == ["Qwen/Qwen2.5-0.5B"]
        assert [r.key.value for r in app.screen.query_one("#cache", DataTable).ordered_rows] == ["org/half-done"]


async def test_choose_continues_to_the_profile_screen():
    backend = fake()
    app = app_with(backend)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause(0.2)
        assert app.current_mode == "profile"
        from textual.widgets import Input

        assert app.screen.query_one("#model", Input).value == "Qwen/Qwen2.5-0.5B"


async def test_real_download_from_the_fake_hub_with_progress(tmp_path, monkeypatch):
    """The real models engine behind the screen: search, then a throttled download whose progress the screen
    shows, into an isolated HF cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    repos = [FakeRepo("org/tiny", tiny_llama_files(600_000), downloads=500, params={"F32": 150_000})]
    with FakeHub(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.throttle_bps = 1_500_000  # about 0.4 s for the weights: several progress updates
        seen = []
        app = app_with(ModelsBackend(gpu=lambda: RTX4090))
        async with app.run_test(size=(100, 34), message_hook=seen.append) as pilot:
            await settle(pilot)
            assert hub.url in str(app.screen.query_one("#endpoint", Static).render())
            await search(pilot, "tiny")
            assert "fit: on NVIDIA GeForce RTX 4090" in info_text(app)
            await pilot.press("d")
            screen = app.screen
            for _ in range(300):
                await pilot.pause(0.02)
                if screen.downloads[0].status not in ("planning", "downloading"):
                    break
            state = screen.downloads[0]
            assert state.status == "done", state.error
            assert state.total == sum(f.size for f in repos[0].files.values() if not f.name.endswith(".bin"))
            updates = [m for m in seen if type(m).__name__ == "DownloadEvent" and m.kind == "progress"]
            assert len(updates) >= 3 and updates[-1].value.done == state.total
            snapshot = Path(state.path)
            assert (snapshot / "model.safetensors").read_bytes() == repos[0].files["model.safetensors"].data
            assert not (snapshot / "pytorch_model.bin").exists()  # safetensors preferred
            await pilot.press("l")
            await settle(pilot)
            assert [r.key.value for r in screen.query_one("#cache", DataTable).ordered_rows] == ["org/tiny"]


async def test_modelscope_source_search_and_download_into_its_cache(tmp_path, monkeypatch):
    """`s` switches the screen to ModelScope: the real models engine behind it talks to our stand-in ModelScope
    server (tests/models/fakemodelscope.py, through MODELSCOPE_DOMAIN): the switch shows that endpoint, a search
    lists its models, the detail shows the files and the fit, a download shows progress and lands byte-exact in
    the ModelScope cache, and the cache list says where each model came from."""
    import json
    import os

    pytest.importorskip("modelscope_hub", reason="the [modelscope] extra is not installed")
    from fakemodelscope import FakeModelScope

    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1024}
    weights = os.urandom(1_500_000)
    repos = {"Qwen/Tiny-Chat": {"config.json": json.dumps(config).encode(), "model.safetensors": weights,
                                "tokenizer.json": b'{"version": "1.0"}'},
             "Qwen/Other-Base": {"config.json": b"{}"}}
    with FakeModelScope(repos) as server:
        server.slow = 0.01  # about 0.25 s for the weights: several progress updates
        monkeypatch.setenv("MODELSCOPE_DOMAIN", server.url)
        seen = []
        app = app_with(ModelsBackend(gpu=lambda: RTX4090))
        async with app.run_test(size=(100, 34), message_hook=seen.append) as pilot:
            await settle(pilot)
            endpoint = app.screen.query_one("#endpoint", Static)
            assert str(endpoint.render()).startswith("Hugging Face: ")
            await pilot.press("s")
            await pilot.pause()
            shown = str(endpoint.render())
            assert f"ModelScope: {server.url}" in shown and "MODELSCOPE_DOMAIN server" in shown, shown
            assert str(tmp_path / "ms") in shown
            assert "ModelScope" in str(app.screen.query_one("#source").label)
            await search(pilot, "tiny")
            table = app.screen.query_one("#results", DataTable)
            assert [r.key.value for r in table.ordered_rows] == ["Qwen/Tiny-Chat"]
            assert table.border_title == "ModelScope: 1 results for 'tiny'"
            await settle(pilot)
            text = info_text(app)
            assert "ModelScope" in text and "model.safetensors" in text and "revision master" in text
            assert "fit: on NVIDIA GeForce RTX 4090" in text, text
            await pilot.press("d")
            screen = app.screen
            for _ in range(400):
                await pilot.pause(0.02)
                if screen.downloads[0].status not in ("planning", "downloading"):
                    break
            state = screen.downloads[0]
            assert state.repo == "modelscope://Qwen/Tiny-Chat" and state.status == "done", state.error
            updates = [m for m in seen if type(m).__name__ == "DownloadEvent" and m.kind == "progress"]
            assert len(updates) >= 3 and updates[-1].value.done == state.total == sum(
                len(b) for b in repos["Qwen/Tiny-Chat"].values())
            snapshot = tmp_path / "ms" / "models" / "Qwen--Tiny-Chat" / "snapshots" / "master"
            assert Path(state.path) == snapshot and (snapshot / "model.safetensors").read_bytes() == weights
            await pilot.press("l")
            await settle(pilot)
            cache = screen.query_one("#cache", DataTable)
            assert [r.key.value for r in cache.ordered_rows] == ["modelscope://Qwen/Tiny-Chat"]
            assert str(cache.get_row("modelscope://Qwen/Tiny-Chat")[1]) == "ModelScope"
            assert "(ModelScope cache)" in info_text(app)
            # p hands the Profile screen the model's folder in the ModelScope cache
            await pilot.press("p")
            await pilot.pause(0.2)
            from textual.widgets import Input

            assert app.screen.query_one("#model", Input).value == str(snapshot)
            await pilot.press("2", "s")
            await pilot.pause()
            assert str(screen.query_one("#endpoint", Static).render()).startswith("Hugging Face: https://huggingface.co")


def test_a_modelscope_download_stops_soon_after_x_and_keeps_its_partial_file(tmp_path, monkeypatch):
    """The library retries a failing file for half a minute: the screen's cancel must not look like a failure."""
    import os
    import threading
    import time

    pytest.importorskip("modelscope_hub", reason="the [modelscope] extra is not installed")
    from fakemodelscope import FakeModelScope

    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    with FakeModelScope({"Qwen/T": {"model.safetensors": os.urandom(2_000_000)}}) as server:
        server.slow = 0.02  # 64 KiB every 20 ms: about 0.6 s for the whole file
        monkeypatch.setenv("MODELSCOPE_DOMAIN", server.url)
        backend = ModelsBackend(gpu=lambda: RTX4090)
        the_plan = backend.plan("modelscope://Qwen/T")
        cancel = threading.Event()
        got = []

        def progress(pr) -> None:  # x pressed once a few chunks are in
            got.append(pr)
            if len(got) == 3:
                cancel.set()
                got.append(time.monotonic())

        with pytest.raises(HubError) as e:
            backend.download(the_plan, progress, cancel)
        assert e.value.kind == "cancelled" and time.monotonic() - got[3] < 10
        assert got[2].done < 2_000_000
        assert list((tmp_path / "ms").rglob("*.incomplete"))


# --- snapshots -------------------------------------------------------------------------------------------------
SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_snapshot_results_and_detail(snap_compare, size):
    async def run_before(pilot):
        await search(pilot)
        await settle(pilot)

    assert snap_compare(app_with(fake()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_snapshot_download_in_progress(snap_compare, size):
    backend = fake(hold=True)

    async def run_before(pilot):
        await search(pilot)
        await pilot.press("d")
        for _ in range(50):
            await pilot.pause(0.02)
            if backend.downloaded:
                break
        await pilot.pause(0.1)

    try:
        assert snap_compare(app_with(backend), terminal_size=size, run_before=run_before)
    finally:
        backend.release()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_snapshot_gated_error(snap_compare, size):
    async def run_before(pilot):
        await search(pilot, "llama")
        await settle(pilot)

    assert snap_compare(app_with(fake()), terminal_size=size, run_before=run_before)


def test_snapshot_modelscope_source_and_both_caches(snap_compare):
    from tunedoc.models.modelscope import MsCached

    ms_cached = MsCached("Qwen/Qwen2.5-0.5B-Instruct", "/home/ana/.cache/modelscope/hub/models/Qwen--Qwen2.5-0.5B-Instruct",
                         988_000_000, ["master"], None)

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("s", "l")
        await settle(pilot)
        await pilot.press("down", "down")
        await pilot.pause()

    assert snap_compare(app_with(fake(cached=[*CACHED, ms_cached])), terminal_size=(80, 24), run_before=run_before)


async def test_search_against_a_silent_endpoint_gives_up_in_seconds_and_names_it(tmp_path, monkeypatch):
    """Offline behind a firewall that drops packets: the search waits in a worker (the screen answers keys),
    gives up after the look-up timeout, and says which endpoint did not answer and that a mirror helps."""
    import socket
    import time

    import tunedoc.models.hub
    from tunedoc import models

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    # the real one is 8 s; 4 s leaves the checks made while the search waits time to run on a loaded box
    monkeypatch.setattr(models.hub, "LOOKUP_TIMEOUT_S", 4.0)
    try:
        app = app_with(ModelsBackend(gpu=lambda: RTX4090))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            t0 = time.monotonic()
            await pilot.press("slash", *"qwen", "enter")
            await pilot.pause()
            assert screen.searching and not screen.loading
            await pilot.press("escape", "l")  # the screen still answers keys while the search waits
            await pilot.pause()
            assert screen.has_class("-cache")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert time.monotonic() - t0 < 30
            shown = info_text(app)
            assert endpoint in shown and "hf-mirror.com" in shown, shown
    finally:
        server.close()
