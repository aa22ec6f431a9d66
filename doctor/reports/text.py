"""Turning what people paste into lines a parser can read.

Pasted reports arrive wrapped in chat and markdown: ANSI colour codes, Windows CRLF, `>` quoting (also nested),
code fences, docker-compose prefixes (`app-1  | ...`), GitHub's `<details>` tags. `Report(text)` removes the
wrapping and keeps each line's number in the original text, so a signature can say `file.txt:123`.

The Report is that cleaning done once for every parser, with what a long log needs to stay fast: the distinct lines
(a training log prints the same warning on every step; a line-wise fact or signature only needs its first
occurrence, whose line number is kept) and each distinct line's *shape* (lowercased, every digit a 0), which step
counters and progress bars share, so a cheap test decided once per shape can skip a line before any regex runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
QUOTE = re.compile(r"^(?:[ \t]*>[ \t]?)+")
FENCE = re.compile(r"^\s*(```|~~~)[\w+-]*\s*$")
COMPOSE = re.compile(r"^[\w.-]+(?:-\d+)?\s+\|\s")  # "orpheus-fastapi     | ..." (docker compose logs)
COMPOSE_NL = re.compile(r"\n[\w.-]+(?:-\d+)?[^\S\n]+\|[^\S\n]")  # one at a line's start (after the first)
QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})  # pasted through chat/CSDN
HTML_TAG = re.compile(r"^\s*</?(details|summary|pre|code)\b[^>]*>(.*?)(</summary>)?\s*$", re.I)
DIGITS = bytes.maketrans(b"123456789", b"000000000")


@dataclass(slots=True)
class Line:
    no: int  # 1-based line number in the original text
    text: str  # cleaned text, trailing whitespace removed; leading indentation kept


def _clean(text: str) -> tuple[list[str], list[int]]:
    """The cleaned lines' texts and their 1-based numbers in `text` (code fences are dropped, so they can skip).

    Most lines of a long log only lose their trailing whitespace: the other steps run on the lines holding the
    character they need (`>`, `<`, a fence), all of them only for a docker compose log."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x1b" in text:
        text = ANSI.sub("", text)
    for q, r in QUOTES.items():  # character for character, so it can be done before the lines are cut
        if chr(q) in text:
            text = text.replace(chr(q), r)
    raw = text.split("\n")
    # docker compose prefixes only when most non-empty lines carry the same one
    strip_compose = False
    if "|" in text and (COMPOSE.match(text) or COMPOSE_NL.search(text)):
        prefixes = [COMPOSE.match(x) for x in raw if x.strip()]
        strip_compose = bool(prefixes) and sum(1 for p in prefixes if p) >= max(2, len(prefixes) // 2)
    texts = [x.rstrip() for x in raw]
    nos = list(range(1, len(raw) + 1))
    marks = tuple(c for c in (">", "<", "```", "~~~") if c in text)
    if strip_compose:
        special = range(len(raw))
    else:  # a tag line starts with "<" (one quoted with ">" is found by its ">")
        special = sorted(set().union(*([i for i, x in enumerate(raw) if c in x and (c != "<" or x.lstrip()[:1] == "<")]
                                       for c in marks)))
    fences = []
    for i in special:
        line = raw[i]
        if ">" in line:
            line = QUOTE.sub("", line)
        if strip_compose:
            line = COMPOSE.sub("", line, count=1)
        if ("```" in line or "~~~" in line) and FENCE.match(line):
            fences.append(i)
            continue
        if "<" in line:
            m = HTML_TAG.match(line)
            if m:
                line = m.group(2) or ""
        texts[i] = line.rstrip()
    if "\u00a0" in text:
        texts = [x.replace("\u00a0", " ") for x in texts]
    if fences:
        gone = set(fences)
        keep = [i for i in range(len(raw)) if i not in gone]
        texts, nos = [texts[i] for i in keep], [nos[i] for i in keep]
    return texts, nos


def shape_of(s: str) -> bytes:
    """What a shape test compares: lowercased, UTF-8, every digit 0 ('Step 12/500' -> b'step 00/000')."""
    return s.lower().encode("utf-8", "surrogatepass").translate(DIGITS)


class Report:
    """A pasted text cleaned once and handed to every parser.

    texts/nos   every cleaned line and its number in the original (the format parsers read sections in order);
    distinct    the index of the first line with each text, in order (line-wise parsers read these);
    text        the distinct lines joined: what whole-text searches and presence tests read, each line once;
    shapes      shape_of() of each distinct line (aligned with `distinct`); `shape` is them joined; has() reads
                each shape once.
    """

    def __init__(self, text: str):
        self.texts, self.nos = _clean(text)
        n = len(self.texts)
        # the first index of each text: a dict built from the end keeps the earliest one
        first = dict(zip(reversed(self.texts), range(n - 1, -1, -1)))
        self.distinct = sorted(first.values()) if len(first) < n else list(range(n))
        self.text = "\n".join(self.texts[i] for i in self.distinct) if len(first) < n else "\n".join(self.texts)
        self.shape = shape_of(self.text)
        self.shapes = self.shape.split(b"\n")
        self._shape_set = b"\n".join(dict.fromkeys(self.shapes))  # each shape once: what has() searches
        self._shape_str: str | None = None

    def line(self, i: int) -> Line:
        return Line(self.nos[i], self.texts[i])

    def select(self, pred, *needles: str) -> list[Line]:
        """Every line (repeats too, in order) whose text passes `pred`, which is asked once per distinct text (only
        of those that may hold a needle, when given: `pred` must be false without one)."""
        texts = self.lines_with(*needles) if needles else (self.texts[i] for i in self.distinct)
        ok = {t for t in texts if pred(t)}
        if not ok:
            return []
        return [Line(n, t) for n, t in zip(self.nos, self.texts) if t in ok]

    def lines_with(self, *needles: str) -> list[str]:
        """The distinct lines that may hold a needle (ignoring case, a digit for any digit), in order: a superset,
        found by searching the shapes, for a caller to test exactly. A line is listed once."""
        shape, hits = self.shape, set()
        for n in needles:
            nb, k, last = shape_of(n), 0, 0
            pos = shape.find(nb)
            while pos >= 0:
                k += shape.count(b"\n", last, pos)
                hits.add(k)
                last = shape.find(b"\n", pos)
                if last < 0:
                    break
                k, last = k + 1, last + 1
                pos = shape.find(nb, last)
        return [self.texts[self.distinct[k]] for k in sorted(hits)]

    def may(self, rx: re.Pattern) -> bool:
        """Whether `rx` can match some line, tried once per shape: a necessary test for a pattern with no literal
        digit and no capital letter, or one that ignores case (what matches a line matches its shape)."""
        if self._shape_str is None:
            self._shape_str = self._shape_set.decode("utf-8", "surrogatepass")
        return rx.search(self._shape_str) is not None

    def has(self, *needles: str) -> bool:
        """Whether any needle occurs in some line, ignoring case (a necessary test: cheap, never a false 'no')."""
        return any(shape_of(n) in self._shape_set for n in needles)


def decode(data: bytes, name: str) -> str:
    """Bytes of a report file -> text. Raises ValueError with the reason for binary or undecodable data.

    PowerShell 5's `>` writes UTF-16 with a BOM, so that is read too; a few stray bytes from a legacy code page
    (cp1252/GBK console output) are replaced rather than refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data[:200].count(b"\x00") > 20 and data[1::2][:100].count(0) > 40:  # UTF-16LE without a BOM
        try:
            return data.decode("utf-16-le")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        raise ValueError(f"{name} is a binary file (it contains NUL bytes), not a text report")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        high = sum(1 for b in data if b > 127)
        if text.count("\ufffd") > 3 and high < len(data) // 3:
            # a Chinese-locale Windows console writes GBK (cp936): "找不到指定的模块", "动态链接库(DLL)初始化例程失败"
            gbk = data.decode("gbk", errors="replace")
            if gbk.count("\ufffd") < text.count("\ufffd") // 4:
                return gbk
        if text.count("\ufffd") > max(3, len(text) // 50):
            raise ValueError(f"{name} is not UTF-8 text (it looks binary)") from None
        return text
