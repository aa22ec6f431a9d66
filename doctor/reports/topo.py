"""`nvidia-smi topo -m` (how each pair of GPUs is linked) and `nvidia-smi topo -p2p r|w|rw|a|n` (whether each pair
has peer-to-peer access), pasted or captured by the probe.

    parse_topo(text) -> Topology | None        # links and/or p2p, the legend, GPUs only (NIC rows/columns dropped)

The matrix is whitespace separated (tabs from the tool, spaces after a paste), one header of column labels
("GPU0 GPU1 NIC0 CPU Affinity ..."), one row per device, then a legend ("  NV#  = Connection traversing a bonded set
of # NVLinks"; a pasted legend may wrap, continuation lines join the entry above). Old drivers printed SOC where
newer ones print SYS. A matrix cut off by the paste (fewer rows than columns) is left out: half a matrix would
say nothing certain about the pairs it lost.
"""

from __future__ import annotations

import re

from tunedoc.doctor.facts import Facts, Topology
from tunedoc.doctor.reports.text import Line, Report

LINK = re.compile(r"^(X|NV\d+|PIX|PXB|PHB|NODE|SYS|SOC)$")
P2P = re.compile(r"^(X|OK|NS|GNS|CNS|TNS|DR|U)$")
GPU_LABEL = re.compile(r"^GPU(\d+)$")
LEGEND = re.compile(r"^\s*(X|NV#|PIX|PXB|PHB|NODE|SYS|SOC|OK|NS|GNS|CNS|TNS|DR|U)\s+=\s+(.+)$")

# what each link means for training across the cards, best first (NCCL's own ordering of paths)
RANK = {"NV": 0, "PIX": 1, "PXB": 2, "PHB": 3, "NODE": 4, "SYS": 5, "SOC": 5}
WORDS = {"PIX": "one PCIe switch", "PXB": "several PCIe switches", "PHB": "through the CPU's PCIe host bridge",
         "NODE": "across PCIe host bridges of one CPU", "SYS": "across CPU sockets (QPI/UPI/Infinity Fabric)",
         "SOC": "across CPU sockets (QPI/UPI/Infinity Fabric)"}
P2P_WORDS = {"OK": "supported", "NS": "not supported", "GNS": "not supported by the GPU",
             "CNS": "not supported by the chipset", "TNS": "not supported by the topology", "DR": "disabled by regkey",
             "U": "unknown"}


def link_kind(code: str) -> str:
    """'NV12' -> 'NV'; 'SOC' -> 'SYS'; others as they are."""
    return "NV" if code.startswith("NV") else ("SYS" if code == "SOC" else code)


def describe(code: str) -> str:
    if code.startswith("NV") and code[2:].isdigit():
        return f"NVLink ({code[2:]} bonded link{'s' if code[2:] != '1' else ''})"
    return f"PCIe, {WORDS.get(code, code)}"


def _matrices(lines: list[Line]) -> list[tuple[str, list[str], list[list[str]], int]]:
    """(kind, labels, rows, last line index) of every GPU matrix in the text; kind is 'links' or 'p2p'."""
    out = []
    i = 0
    while i < len(lines):
        head = lines[i].text.split()
        n = 0
        while n < len(head) and head[n] == f"GPU{n}":
            n += 1
        if n < 1 or (len(head) > n and GPU_LABEL.match(head[n])):
            i += 1
            continue
        rows: list[list[str]] = []
        j = i + 1
        while j < len(lines) and len(rows) < n:
            toks = lines[j].text.split()
            if not toks:
                j += 1
                continue
            if toks[0] != f"GPU{len(rows)}" or len(toks) < n + 1:
                break
            rows.append(toks[1:n + 1])
            j += 1
        cells = [c for r in rows for c in r]
        if len(rows) < n or any(r[k] != "X" for k, r in enumerate(rows)):
            i += 1
            continue
        if all(LINK.match(c) for c in cells):
            out.append(("links", [f"GPU{k}" for k in range(n)], rows, j))
        elif all(P2P.match(c) for c in cells):
            out.append(("p2p", [f"GPU{k}" for k in range(n)], rows, j))
        i = j
    return out


def _legend(lines: list[Line]) -> dict[str, str]:
    legend: dict[str, str] = {}
    last = None
    for ln in lines:
        m = LEGEND.match(ln.text)
        if m:
            last = m.group(1)
            legend[last] = m.group(2).strip()
        elif last and ln.text.strip() and not ln.text.split()[0].startswith("GPU") and ln.text.startswith("  ") \
                and "=" not in ln.text and not ln.text.strip().startswith(("#", "Legend")):
            legend[last] += " " + ln.text.strip()  # a wrapped legend line
        else:
            last = None
    return legend


def parse_topo(text_or_report: str | Report) -> Topology | None:
    """The topology in pasted `nvidia-smi topo -m` / `topo -p2p` output, or None when there is no such matrix."""
    report = Report(text_or_report) if isinstance(text_or_report, str) else text_or_report
    if not report.has("GPU0"):  # every matrix's header starts with it: most reports end here, cheaply
        return None
    lines = [report.line(i) for i in range(len(report.texts))]
    found = _matrices(lines)
    if not found:
        return None
    topo = Topology()
    for kind, labels, rows, _ in found:
        if kind == "links" and topo.links is None:
            topo.links = [[("SYS" if c == "SOC" else c) for c in r] for r in rows]
        elif kind == "p2p" and topo.p2p is None:
            topo.p2p = rows
        if len(labels) > len(topo.gpus):
            topo.gpus = labels
    topo.legend = _legend(lines)
    return topo


def parse_topo_report(report: Report, facts: Facts) -> bool:
    """The report parser: fills facts.topology from a pasted matrix. True when there was one."""
    topo = parse_topo(report)
    if topo is None:
        return False
    t = facts.topology
    if t.links is None and topo.links is not None:
        t.links = topo.links
    if t.p2p is None and topo.p2p is not None:
        t.p2p = topo.p2p
    if len(topo.gpus) > len(t.gpus):
        t.gpus = topo.gpus
    t.legend = {**topo.legend, **t.legend}
    t.source = t.source or "report"
    return True
