"""`pip list`, `pip freeze` (incl. `name @ url` lines) and `conda list`."""

from __future__ import annotations

import re
from urllib.parse import unquote

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.reports.common import add_package, fill
from tunedoc.doctor.reports.text import Report

PIP_LIST_HEAD = re.compile(r"^Package\s+Version(\s+(Editable project location|Location|Installer))*\s*$")
PIP_LIST_ROW = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s+(\d[\w.+!-]*)(\s+\S.*)?$")
FREEZE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[\w,-]+\])?\s*==\s*(\d[\w.+!-]*)\s*$")
FREEZE_URL = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s+@\s+(\S+)$")
WHEEL = re.compile(r"/([A-Za-z0-9_.]+?)-(\d[\w.!]*(?:\+[\w.]+)?)-[\w.]+-[\w.]+-[\w.]+\.whl")
CONDA_HEAD = re.compile(r"^#\s*Name\s+Version\s+Build\s+Channel")
CONDA_ROW = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s+(\d[\w.+!-]*)\s+(\S+)(?:\s+(\S+))?\s*$")


def parse_pip_list(report: Report, facts: Facts) -> bool:
    if not any(PIP_LIST_HEAD.match(t.strip()) for t in report.lines_with("version")):
        return False  # no table: nothing to read
    found = False
    in_table = False
    for t in report.texts:
        t = t.strip()
        if PIP_LIST_HEAD.match(t):
            in_table, found = True, True
            continue
        if in_table:
            if not t or re.match(r"^-+(\s+-+)*$", t):
                continue
            m = PIP_LIST_ROW.match(t)
            if m:
                add_package(facts, m.group(1), m.group(2))
            else:
                in_table = False
    return found


def parse_pip_freeze(report: Report, facts: Facts) -> bool:
    if not any(FREEZE.match(t.strip()) or FREEZE_URL.match(t.strip()) for t in report.lines_with("==", "@")):
        return False  # no row: nothing to read
    rows = []
    for t in report.texts:
        if "==" not in t and "@" not in t:
            continue
        t = t.strip()
        m = FREEZE.match(t)
        if m:
            rows.append((m.group(1), m.group(2)))
            continue
        m = FREEZE_URL.match(t)
        if m:
            url = unquote(m.group(2))
            w = WHEEL.search(url)
            if w:
                rows.append((m.group(1), w.group(2)))
            else:
                facts.python.packages.setdefault(m.group(1).lower(), url)
    for name, version in rows:
        add_package(facts, name, version)
    return len(rows) >= 2


def parse_conda_list(report: Report, facts: Facts) -> bool:
    if not any(CONDA_HEAD.match(t.strip()) for t in report.lines_with("channel")):
        return False
    facts.python.is_conda = True
    for t in report.texts:
        m = re.match(r"^#\s*packages in environment at (.+):$", t.strip())
        if m:
            fill(facts.python, "prefix", m.group(1))
        m = CONDA_ROW.match(t.strip())
        if not m:
            continue
        name, version, build, channel = m.groups()
        if name == "pytorch":
            add_package(facts, "torch", version)
            if "cpu" in build:
                facts.torch.cuda = ""
            cm = re.search(r"cuda(\d+\.\d+)", build)
            if cm:
                fill(facts.torch, "cuda", cm.group(1))
        elif name == "cpuonly":
            facts.python.packages["cpuonly"] = version
        else:
            add_package(facts, name, version)
    return True
