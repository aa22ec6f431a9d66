"""Turning what people paste into lines a parser can read.

Pasted reports arrive wrapped in chat and markdown: ANSI colour codes, Windows CRLF, `>` quoting (also nested),
code fences, docker-compose prefixes (`app-1  | ...`), GitHub's `<details>` tags. `clean_lines` removes the
wrapping and keeps each line's number in the original text, so a signature can say `file.txt:123`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
QUOTE = re.compile(r"^(?:[ \t]*>[ \t]?)+")
FENCE = re.compile(r"^\s*(```|~~~)[\w+-]*\s*$")
COMPOSE = re.compile(r"^[\w.-]+(?:-\d+)?\s+\|\s")  # "orpheus-fastapi     | ..." (docker compose logs)
QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})  # pasted through chat/CSDN
HTML_TAG = re.compile(r"^\s*</?(details|summary|pre|code)\b[^>]*>(.*?)(</summary>)?\s*$", re.I)


@dataclass
class Line:
    no: int  # 1-based line number in the original text
    text: str  # cleaned text, trailing whitespace removed; leading indentation kept


def clean_lines(text: str) -> list[Line]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = ANSI.sub("", text)
    raw = text.split("\n")
    # docker compose prefixes only when most non-empty lines carry the same one
    prefixes = [COMPOSE.match(x) for x in raw if x.strip()]
    strip_compose = bool(prefixes) and sum(1 for p in prefixes if p) >= max(2, len(prefixes) // 2)
    out = []
    for i, line in enumerate(raw, 1):
        line = QUOTE.sub("", line)
        if strip_compose:
            line = COMPOSE.sub("", line, count=1)
        if FENCE.match(line):
            continue
        m = HTML_TAG.match(line)
        if m:
            line = m.group(2) or ""
        line = line.rstrip().replace("\u00a0", " ").translate(QUOTES)
        out.append(Line(i, line))
    return out


def joined(lines: list[Line]) -> str:
    return "\n".join(x.text for x in lines)


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
