"""A pasted training log that repeats a recognised message on every line is read in linear time (issue 17 item 3).

Before the fix, each matched line re-searched the whole report for torch's capability range (5,000 lines 19 s,
20,000 lines 285 s). These tests count the work instead of timing it.
"""

from __future__ import annotations

import re
import time

from tunedoc.doctor.reports import parse_text, signatures
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
