"""A pasted training log that repeats a recognised message on every line is read in linear time (issue 17 item 3).

Before the fix, each matched line re-searched the whole report for torch's capability range (5,000 lines 19 s,
20,000 lines 285 s). These tests count the work instead of timing it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tunedoc.doctor.reports import ReportError, parse_text, signatures
from tunedoc.doctor.reports.text import COMPOSE
from tunedoc.doctor.rules import evaluate

WARN = "UserWarning: Found GPU0 NVIDIA GeForce GTX 1080 which is of cuda capability 6.1."


class CountingPattern:
    def __init__(self, rx: re.Pattern):
        self.rx, self.calls, self.chars = rx, 0, 0

    def search(self, text, *a):
        self.calls += 1
        self.chars += len(text)
        return self.rx.search(text, *a)


def _log(n: int, fmt: str = WARN) -> str:
    return "\n".join(fmt.format(i=i) for i in range(n)) + "\n"


def test_whole_report_conditions_are_read_once_not_once_per_line(monkeypatch):
    counter = CountingPattern(signatures.RANGE)
    monkeypatch.setattr(signatures, "RANGE", counter)
    small = parse_text(_log(200))
    small_chars = counter.chars
    counter.calls = counter.chars = 0
    big = parse_text(_log(2000))
    # once per report: 10x the lines reads 10x the characters (it was once per matched line: 100x)
    assert counter.calls <= 2
    assert counter.chars <= 11 * small_chars
    # still diagnosed the same way, with a bounded number of evidence lines
    ids = {f.id for f in evaluate(big)}
    assert "torch-arch-unsupported" in ids and ids == {f.id for f in evaluate(small)}
    assert len(big.signatures) <= signatures.PER_ID


def test_distinct_lines_each_searched_by_few_rows(monkeypatch):
    # every line differs (a step counter) so no line is skipped as a repeat; the per-line regex work stays bounded
    calls = 0
    real = list(signatures.COMPILED)

    class Spy:
        def __init__(self, rx):
            self.rx = rx
            self.groupindex = rx.groupindex

        def search(self, t):
            nonlocal calls
            calls += 1
            return self.rx.search(t)

    monkeypatch.setattr(signatures, "COMPILED", [(row, Spy(rx)) for row, rx in real])
    facts = parse_text(_log(3000, "step {i}: UserWarning: Torch not compiled with CUDA enabled"))
    assert "torch-cpu-build" in {s.id for s in facts.signatures}
    # a row's regex runs only on lines holding its literal key, and not at all once its id has PER_ID lines
    assert calls < 2 * 3000  # one regex per line at most here; every row on every line was ~50 per line


def test_ten_times_the_lines_is_about_ten_times_the_time():
    # generous bound, no absolute wall clock: quadratic growth gave ~100x here
    def t(n):
        text = _log(n, "step {i}: " + WARN)
        best = float("inf")
        for _ in range(2):
            a = time.perf_counter()
            evaluate(parse_text(text))
            best = min(best, time.perf_counter() - a)
        return best

    small, big = t(2000), t(20000)
    assert big / small < 40


# --- the shared pass (reports.text.Report): distinct lines and line shapes must not change what a user is told -----
CORPUS = Path(__file__).parent / "corpus"
STEP_CPU = "step {i}: UserWarning: Torch not compiled with CUDA enabled"


def _noise(n: int) -> str:
    """A training log's own lines around a report (saying nothing about the machine): tqdm bars (one line per \\r),
    a warning every step, loss dicts."""
    out = []
    for i in range(n):
        out.append("\r".join(f"{(i * 3 + k) % 100:3d}%|{'#' * (k + 1):<10}| {i * 3 + k}/{n * 3} [00:{k:02d}<01:00, "
                             f"{1.5 + k / 10:.2f}it/s]" for k in range(3)))
        out.append("trainer.py:1525: FutureWarning: `evaluation_strategy` is deprecated, use `eval_strategy`")
        out.append("{'loss': %.4f, 'grad_norm': %.3f, 'epoch': %.2f}" % (2 - i / n, 1 + i % 7 / 10, i / n))
    return "\n".join(out) + "\n"


def _said(facts, findings, shift: int = 0) -> dict:
    """Everything a user is told, with `log.txt:N` line numbers moved by `shift`."""
    move = lambda s: re.sub(r"log\.txt:(\d+)", lambda m: f"log.txt:{int(m.group(1)) + shift}", s)  # noqa: E731
    return {"findings": [(f.id, f.severity, f.title, [move(e) for e in f.evidence], [x.title for x in f.fixes])
                         for f in findings],
            "quoted": {k: move(v) for k, v in facts.quoted.items()},
            "conflicts": [move(c) for c in facts.conflicts], "sources": facts.sources}


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.txt")), ids=lambda p: p.stem[:40])
def test_a_report_inside_a_long_repetitive_log_says_the_same_with_its_first_line_numbers(path):
    # the report alone, then the same report after a training log's lines and followed by its own error lines
    # repeated every step and the step-counter lines that follow them: same findings, facts and evidence, each
    # quoting the report's first copy of a line (its number moved by the lines before it)
    report = path.read_text(encoding="utf-8", errors="replace")
    try:
        alone = parse_text(report, "log.txt")
    except ReportError:
        pytest.skip("not a report the doctor reads")
    raw = report.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if sum(1 for x in raw if COMPOSE.match(x)) > 1:
        pytest.skip("compose prefixes are cut when most lines carry them: a log around them changes that")
    head = _noise(200)
    evidence = [raw[int(s.source.rsplit(":", 1)[1]) - 1] for s in alone.signatures]
    tail = "".join(_noise(3) + "".join(line + "\n" for line in evidence) for _ in range(150))
    long = parse_text(head + report + ("" if report.endswith("\n") else "\n") + tail, "log.txt")
    shift = head.replace("\r", "\n").count("\n")
    assert _said(long, evaluate(long)) == _said(alone, evaluate(alone), shift)


def test_lines_that_differ_only_in_a_counter_are_each_read_and_quoted_where_they_first_are():
    # a step counter makes every line distinct: each is still a line of its own (the first five are the evidence,
    # as without the shared pass), not one line standing for all
    text = _noise(50) + _log(5000, STEP_CPU)
    first = text.replace("\r", "\n").count("\n", 0, text.index("step 0:")) + 1
    facts = parse_text(text, "log.txt")
    found = {f.id: f for f in evaluate(facts)}
    assert [e.split(": ", 1)[0] for e in found["torch-cpu-build"].evidence] == [
        f"log.txt:{first + k}" for k in range(5)]
    assert found["torch-cpu-build"].evidence[4].endswith("step 4: UserWarning: Torch not compiled with CUDA enabled")


def test_a_warning_repeated_on_every_step_is_quoted_at_its_first_line():
    text = _noise(30) + WARN + "\n" + _noise(30) + _log(20000)
    first = text.replace("\r", "\n").count("\n", 0, text.index(WARN)) + 1
    facts = parse_text(text, "log.txt")
    ev = {f.id: f.evidence for f in evaluate(facts)}["torch-arch-unsupported"]
    assert ev == [f"log.txt:{first}: {WARN}"]
    assert facts.gpus[0].name == "NVIDIA GeForce GTX 1080" and facts.gpus[0].compute_capability == "6.1"


def test_a_dict_printed_every_step_is_not_decoded_against_the_whole_log(monkeypatch):
    # `{'loss': ...}` lines look like JSON objects to the search for tunedoc's own JSON; each failed decode of the
    # whole text cost the length of the text before it (json counts its lines for the error): a 50 MB training log
    # took 268 s. Count the characters handed to the decoder instead of timing it.
    import json

    seen = []
    real = json.JSONDecoder.raw_decode

    def counting(self, s, idx=0):
        seen.append(len(s) - idx)
        return real(self, s, idx)

    monkeypatch.setattr(json.JSONDecoder, "raw_decode", counting)
    text = "".join("{'loss': %.4f, 'epoch': %.2f}\n" % (1 - i / 1e4, i / 1e3) for i in range(3000)) + WARN + "\n"
    facts = parse_text(text, "log.txt")
    assert len(seen) == 3000 and sum(seen) <= 2 * len(text)  # each line's own characters, not the rest of the log
    assert "torch-arch-unsupported" in {s.id for s in facts.signatures}
