"""The corpus: real reports from public issue threads must reach the diagnosis the thread reached.

Every entry of corpus/index.toml is run through the same path as `tunedoc doctor --from FILE` (parse_files, then the
rules) and must produce its `expect` findings with their severity and none of its `absent` ids. One entry also goes
through the real CLI in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"
INDEX_FILES = [CORPUS / "index.toml", *sorted(CORPUS.glob("index-*.toml"))]
INDEX = [dict(e, index=p.name) for p in INDEX_FILES
         for e in tomllib.loads(p.read_text(encoding="utf-8")).get("report", [])]
# entries whose expectation is demonstrably wrong against its own thread: file -> reason (listed in the report)
XFAIL: dict[str, str] = {}

needs_rules = pytest.mark.skipif(importlib.util.find_spec("tunedoc.doctor.rules") is None,
                                 reason="doctor.rules (the rules engineer's part) is not in the tree yet")


def test_index_lists_every_file_and_real_sources():
    files = {p.name for p in CORPUS.glob("*.txt")}
    listed = [e["file"] for e in INDEX]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert files == set(listed), f"unlisted: {files - set(listed)}, missing: {set(listed) - files}"
    assert len(INDEX) >= 25
    for e in INDEX:
        assert e["source"].startswith("https://github.com/"), e["file"]
        assert e["concluded"].strip(), e["file"]
        for item in e["expect"]:
            assert item.count(":") == 1, f"{e['file']}: expect items are id:severity, got {item!r}"


def _params():
    return [pytest.param(e, id=e["file"], marks=pytest.mark.xfail(reason=XFAIL[e["file"]], strict=True))
            if e["file"] in XFAIL else pytest.param(e, id=e["file"]) for e in INDEX]


@needs_rules
@pytest.mark.parametrize("entry", _params())
def test_report_reaches_the_threads_diagnosis(entry):
    from tunedoc.doctor.reports import parse_files
    from tunedoc.doctor.rules import evaluate

    facts = parse_files([str(CORPUS / entry["file"])])
    findings = evaluate(facts)
    got = {f.id: f.severity for f in findings}
    if entry.get("healthy"):
        errors = [f.id for f in findings if f.severity == "error"]
        assert not errors, f"{entry['file']} is a healthy machine ({entry['concluded']}); got errors {errors}"
    for item in entry["expect"]:
        fid, severity = item.split(":")
        assert fid in got, f"{entry['file']}: expected {fid} ({entry['concluded']}); got {got}"
        assert got[fid] == severity, f"{entry['file']}: {fid} is {got[fid]}, expected {severity}"
    for fid in entry.get("absent", []):
        assert fid not in got, f"{entry['file']}: {fid} must not appear ({entry['concluded']}); got {got}"


@needs_rules
@pytest.mark.skipif(importlib.util.find_spec("tunedoc.doctor.cli") is None, reason="doctor.cli is not in the tree yet")
def test_cli_from_file_json_reaches_the_diagnosis():
    path = CORPUS / "pytorch-150733-rtx5090d-cu126.txt"
    proc = subprocess.run([sys.executable, "-c", "import sys; from tunedoc.cli import main; sys.exit(main(sys.argv[1:]))", "doctor", "--from", str(path), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr  # an error finding stands
    out = json.loads(proc.stdout)
    ids = {f["id"]: f for f in out["findings"]}
    assert ids["torch-arch-unsupported"]["severity"] == "error"
    # the report's driver is 570.124.04 (CUDA 12.8): 2.12+ dropped cu128, so 2.11.0 cu128 is the newest it runs
    assert any("torch==2.11.0 --index-url https://download.pytorch.org/whl/cu128" in " ".join(fx["commands"])
               for fx in ids["torch-arch-unsupported"]["fixes"])
    assert out["facts"]["origin"] == "report"


def test_bench_blind_score_does_not_count_a_rejected_report_as_a_pass():
    # bench/doctor_corpus.py: a healthy case with an empty `expect` that the doctor rejected ("no report
    # recognized") got no answer at all; the collectors' formula counted it as passed
    spec = importlib.util.spec_from_file_location("doctor_corpus", Path(__file__).parents[2] / "bench" / "doctor_corpus.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    entry = {"file": "x.txt", "healthy": True, "expect": [], "absent": ["no-driver"]}
    rec = {"pass": True, "got": {}, "error": "ReportError: no report recognized in x.txt: paste ..."}
    got, errored = bench._got(rec)
    assert errored and bench.judge(entry, got, errored) == (False, "no report recognized")
    assert bench.judge(entry, {"platform-ok": "ok"}, False) == (True, "")
    # and in the real records: bnb-807 is one such case
    blind = bench._blind_records()
    rec = blind["bnb-807-windows10-cu121-jllllll-wheel-works-healthy.txt"]
    assert rec["pass"] is True and bench._got(rec)[1]
