"""The runner: probes run concurrently, each reported as it finishes, a probe bug or a hung child never stops the
others, and cancel() kills a hung torch child at once."""

from __future__ import annotations

import sys
import textwrap
import threading
import time

import pytest

from tunedoc.doctor import run
from tunedoc.doctor.facts import Facts
from tunedoc.doctor.findings import AREAS


def fake_torch(tmp_path, monkeypatch, src: str) -> None:
    pkg = tmp_path / "site" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(src))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))


SLOW_CPU_TORCH = """
    import time
    time.sleep(3)
    __version__ = "2.7.0+cpu"
    class version:
        cuda = None
        hip = None
    class cuda:
        is_available = staticmethod(lambda: False)
"""


def test_probe_names_and_areas_are_consistent():
    assert len(run.PROBES) == len(set(run.PROBES))
    assert set(run.PROBE_AREAS) == set(run.PROBES)
    for probe, areas in run.PROBE_AREAS.items():
        assert areas and set(areas) <= set(AREAS), probe


def test_probes_run_concurrently_and_report_as_they_finish(tmp_path, monkeypatch):
    fake_torch(tmp_path, monkeypatch, SLOW_CPU_TORCH)
    seen: list[tuple[str, float]] = []
    t0 = time.monotonic()
    facts = run.probe_all(on_status=lambda name, st: seen.append((name, time.monotonic() - t0)))
    total = time.monotonic() - t0
    done = dict(seen)
    assert set(run.PROBES) <= set(done) and "bnb" in done
    # the quick in-process probes were reported while the torch child still slept
    assert done["platform"] < 2.5 and done["env"] < 2.5 and done["hf"] < 2.5
    assert done["torch"] >= 3
    # concurrent: the total is about the slowest probe, not the sum
    assert total < 3 + 6
    assert facts.torch.version == "2.7.0+cpu"
    assert set(facts.probes) == set(run.PROBES) | {"bnb"}
    assert all(st.elapsed_s is not None for st in facts.probes.values())


def test_only_runs_the_named_probes():
    facts = run.probe_all(only=["platform", "env"])
    assert set(facts.probes) == {"platform", "env"}
    assert facts.torch.import_ok is None  # unknown: not probed
    assert facts.platform.system


def test_a_probe_that_crashes_becomes_a_failed_status(monkeypatch):
    from tunedoc.doctor.probes import system

    def boom(facts):
        raise RuntimeError("bug in the platform probe")

    monkeypatch.setattr(system, "probe_platform", boom)
    st = run.run_probe("platform", Facts())
    assert not st.ok and "RuntimeError: bug in the platform probe" in st.error
    facts = run.probe_all(only=["platform", "env"])
    assert not facts.probes["platform"].ok and facts.probes["env"].ok


def test_unknown_probe_name_is_a_status_not_an_exception():
    st = run.run_probe("gpu-magic", Facts())
    assert not st.ok and "unknown probe" in st.error


def test_a_hung_torch_does_not_hang_the_doctor(tmp_path, monkeypatch):
    fake_torch(tmp_path, monkeypatch, "import time\ntime.sleep(300)\n")
    t0 = time.monotonic()
    facts = run.probe_all(only=["torch", "platform"], timeout=3)
    assert time.monotonic() - t0 < 15
    assert facts.probes["torch"].timed_out
    ids = [f.id for f in run.diagnose(facts)]
    assert "torch-import-error" in ids
    hung = next(f for f in run.diagnose(facts) if f.id == "torch-import-error")
    assert "hangs" in hung.title


@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX fake package path")
def test_cancel_kills_a_hung_torch_child_at_once(tmp_path, monkeypatch):
    fake_torch(tmp_path, monkeypatch, "import time\ntime.sleep(300)\n")
    out: dict = {}

    def work():
        out["facts"] = run.probe_all(only=["torch"], timeout=120)

    th = threading.Thread(target=work)
    th.start()
    time.sleep(1.5)  # the child is importing (sleeping) now
    t0 = time.monotonic()
    run.cancel()
    th.join(timeout=20)
    assert not th.is_alive(), "probe_all still waiting after cancel()"
    assert time.monotonic() - t0 < 10
    st = out["facts"].probes["torch"]
    assert not st.ok and "cancelled" in st.error and not st.timed_out
    # a cancelled probe claims nothing about torch
    assert out["facts"].torch.import_ok is None
    assert "torch-import-error" not in [f.id for f in run.diagnose(out["facts"])]


def test_diagnose_on_this_machine_explains_every_area():
    facts = run.probe_all(only=["platform", "env", "nvml", "nvidia-smi", "toolkit", "hf"])
    findings = run.diagnose(facts)
    assert findings, "no findings at all"
    assert {f.area for f in findings} <= set(AREAS)
    sev = ["error", "warning", "info", "ok"]
    assert [sev.index(f.severity) for f in findings] == sorted(sev.index(f.severity) for f in findings)
