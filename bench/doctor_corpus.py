"""The doctor's score on its corpus of real reports (issue 12): blind first run, and now.

    python bench/doctor_corpus.py          # both tables
    python bench/doctor_corpus.py --fails  # also list every case that does not pass now, with what it got

(a) Blind first-run score: the collectors ran the doctor as it was before issue 12 on each new case right after
    committing its expectation, and recorded what it said in tests/doctor/corpus/blind-*.json. That is the honest
    measure of how the doctor does on reports it had never seen. Scored here against the committed expectations.
(b) Current score: every case of index.toml and index-*.toml run now through `doctor --from`'s path (parse_files,
    then the rules).

A case passes when every `expect` id is there with its severity, no `absent` id is, and (for `healthy = true`)
no finding is an error. A report the doctor rejected outright ("no report recognized", exit 2) never passes, not
even a healthy case with an empty `expect` (the collectors' first formula counted those as passes). "Broken diagnosed" counts non-healthy cases that pass; "healthy with an error" counts
healthy cases with an error finding. Both are broken down by kind and platform.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "doctor" / "corpus"
sys.path.insert(0, str(ROOT))


def load_index() -> list[dict]:
    out = []
    for p in [CORPUS / "index.toml", *sorted(CORPUS.glob("index-*.toml"))]:
        for e in tomllib.loads(p.read_text(encoding="utf-8")).get("report", []):
            out.append(dict(e, index=p.name))
    return out


def judge(entry: dict, got: dict[str, str], errored: bool = False) -> tuple[bool, str]:
    """(passes, why not) for a case whose findings were `got` (id -> severity). `errored`: the doctor rejected the
    report ("no report recognized"): a fail whatever `expect` says (an empty `expect` is not met by no answer)."""
    if errored:
        return False, "no report recognized"
    for item in entry.get("expect", []):
        fid, sev = item.split(":")
        if got.get(fid) != sev:
            return False, f"missing {item}"
    for fid in entry.get("absent", []):
        if fid in got:
            return False, f"unwanted {fid}"
    if entry.get("healthy") and "error" in got.values():
        return False, "error on a healthy machine: " + ", ".join(k for k, v in got.items() if v == "error")
    return True, ""


def run_now(entry: dict) -> tuple[dict[str, str], bool]:
    from tunedoc.doctor.reports import ReportError, parse_files
    from tunedoc.doctor.rules import evaluate

    try:
        facts = parse_files([str(CORPUS / entry["file"])])
    except ReportError:
        return {}, True
    return {f.id: f.severity for f in evaluate(facts)}, False


def _blind_records() -> dict[str, dict]:
    """file -> what the blind run recorded. Accepts a list of records, {"cases": [...]}, or {file: record}; a record
    holds `findings` (list of {id, severity} or id->severity), `got` / `ids` (["id:severity"] or id->severity),
    `exit`/`rc` (2: no report recognized) or a ready `pass`."""
    out: dict[str, dict] = {}
    for p in sorted(CORPUS.glob("blind-*.json")):
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("cases"), (list, dict)):
            data = data["cases"]
        if isinstance(data, dict):
            data = [dict(v, file=k) if isinstance(v, dict) else {"file": k, "got": v} for k, v in data.items()]
        for rec in data:
            if isinstance(rec, dict) and rec.get("file"):
                out[rec["file"]] = dict(rec, blind_file=p.name)
    return out


def _got(rec: dict) -> tuple[dict[str, str], bool]:
    raw = rec.get("findings", rec.get("got", rec.get("ids", {})))
    if isinstance(raw, dict) and isinstance(raw.get("findings"), list):
        raw = raw["findings"]
    got: dict[str, str] = {}
    if isinstance(raw, dict):
        got = {k: str(v) for k, v in raw.items()}
    elif isinstance(raw, list):
        for x in raw:
            if isinstance(x, dict) and "id" in x:
                got[x["id"]] = x.get("severity", "")
            elif isinstance(x, str):
                fid, _, sev = x.partition(":")
                got[fid] = sev
    err = str(rec.get("error") or "")
    errored = (rec.get("exit", rec.get("rc", rec.get("exit_code"))) == 2 or bool(rec.get("unrecognized"))
               or "no report recognized" in err or "ReportError" in err
               or (bool(err) and not got))  # any error and no findings: the doctor gave no answer
    return got, errored


def table(title: str, rows: list[tuple[dict, bool, str]]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (no cases)")
        return
    broken = [r for r in rows if not r[0].get("healthy")]
    healthy = [r for r in rows if r[0].get("healthy")]
    ok = sum(1 for r in rows if r[1])
    bd = sum(1 for r in broken if r[1])
    he = sum(1 for r in healthy if "error on a healthy" in r[2] or "no report" in r[2])
    print(f"  pass {ok}/{len(rows)} ({100 * ok / len(rows):.0f} %); broken cases diagnosed {bd}/{len(broken)}"
          + (f" ({100 * bd / len(broken):.0f} %)" if broken else "") + f"; healthy cases with an error {he}/{len(healthy)}")
    for key in ("kind", "platform"):
        groups: dict[str, list[bool]] = defaultdict(list)
        for e, passed, _ in rows:
            groups[str(e.get(key, "-"))].append(passed)
        print(f"  by {key}: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(groups.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fails", action="store_true", help="list the cases that do not pass now")
    args = ap.parse_args()
    index = load_index()
    blind = _blind_records()
    rows_blind = []
    for e in index:
        rec = blind.get(e["file"])
        if rec is None:
            continue
        got, errored = _got(rec)
        passed, why = judge(e, got, errored)
        if "pass" in rec and bool(rec["pass"]) != passed:
            why += f" (the record says pass={rec['pass']})"
        rows_blind.append((e, passed, why, rec["blind_file"]))
    table(f"(a) blind first run of the new cases ({len(blind)} recorded in blind-*.json)",
          [r[:3] for r in rows_blind])
    recorded = sum(1 for r in rows_blind if blind[r[0]["file"]].get("pass") is True and _got(blind[r[0]["file"]])[1])
    if recorded:
        print(f"  ({recorded} record(s) marked pass=true by the collectors' formula are rejected reports: not counted)")
    for name in sorted({r[3] for r in rows_blind}):
        table(f"(a) {name}", [r[:3] for r in rows_blind if r[3] == name])
    now_by_file = {}
    rows_now = []
    for e in index:
        got, errored = run_now(e)
        passed, why = judge(e, got, errored)
        rows_now.append((e, passed, why if passed else f"{why}; got {got}"))
        now_by_file[e["file"]] = rows_now[-1]
    table(f"(b) now, every case ({len(index)})", rows_now)
    for name in sorted({r[3] for r in rows_blind}):
        table(f"(b) now, the cases of {name}", [now_by_file[r[0]["file"]] for r in rows_blind if r[3] == name])
    if args.fails:
        for e, passed, why in rows_now:
            if not passed:
                print(f"  FAIL {e['file']} [{e['index']}]: {why}")


if __name__ == "__main__":
    main()
