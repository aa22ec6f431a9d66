"""Rules: pure functions from Facts to Findings.

    findings = evaluate(facts)

Unknown facts (None) never fire a rule, so the TUI can evaluate partial facts while probes still run. Error
signatures found in pasted logs (facts.signatures, ids from the catalog) become findings too, merged with a probed
finding of the same id so nothing is reported twice. The id catalog, with severities and explanations, is
`doctor.rules.catalog.CATALOG`.
"""

from __future__ import annotations

from doctor.facts import Facts
from doctor.findings import AREAS, SEVERITIES, Finding
from doctor.rules import hardware, python, signatures, system
from doctor.rules.catalog import CATALOG

RULES = [
    *hardware.RULES,
    *python.RULES,
    *system.RULES,
]


def evaluate(facts: Facts) -> list[Finding]:
    found: dict[str, Finding] = {}
    for rule in RULES:
        for f in rule(facts) or []:
            _add(found, f)
    for f in signatures.from_signatures(facts, found):
        _add(found, f)
    # an area with a problem does not also show its "ok" line
    bad_areas = {f.area for f in found.values() if f.severity in ("error", "warning")}
    out = [f for f in found.values() if not (f.severity == "ok" and f.area in bad_areas)]
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    area = {a: i for i, a in enumerate(AREAS)}
    return sorted(out, key=lambda f: (area.get(f.area, 99), sev.get(f.severity, 9)))


def _add(found: dict[str, Finding], f: Finding) -> None:
    old = found.get(f.id)
    if old is None:
        found[f.id] = f
        return
    for e in f.evidence:
        if e not in old.evidence:
            old.evidence.append(e)
    if not old.fixes:
        old.fixes = f.fixes


__all__ = ["evaluate", "CATALOG"]
