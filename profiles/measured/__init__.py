"""Published measured peaks (published.toml) and the comparison of the estimator against them.

`compare(config_dir)` returns one row per measurement: measured, estimate (as the same kind of figure), error.
The test suite asserts the accuracy bar on it; `python -m tunedoc.profiles.measured CONFIG_DIR` prints the table.
"""

from __future__ import annotations

import json
import statistics
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tunedoc.profiles.estimate import Stack, estimate
from tunedoc.profiles.profile import Profile

HERE = Path(__file__).parent
GB_PER_GIB = 2**30 / 1e9
# a published row ran another framework: the full-logits loss and no offload unless its stack says otherwise
# (the estimator's defaults follow a tunedoc profile's loss_impl and grad_ckpt instead)
MEASURED_STACK = {"loss": "hf", "offload_activations": False}


@dataclass
class Comparison:
    id: str
    measured_gib: float
    estimate_gib: float
    kind: str
    source: str

    @property
    def error(self) -> float:
        return self.estimate_gib / self.measured_gib - 1


def load_rows(path: Path | None = None) -> list[dict]:
    files = [path] if path else sorted(HERE.glob("*.toml"))
    rows = []
    for f in files:
        rows.extend(tomllib.loads(f.read_text(encoding="utf-8"))["row"])
    return rows


def compare(config_dir: Path, rows: list[dict] | None = None) -> list[Comparison]:
    out = []
    for row in rows if rows is not None else load_rows():
        config = json.loads((Path(config_dir) / f"{row['model']}.json").read_text(encoding="utf-8"))
        profile = Profile.from_dict({"name": row["id"], **row["profile"]})
        est = estimate(config, profile, attn=row.get("attn", "sdpa"), stack=Stack(**{**MEASURED_STACK, **row.get("stack", {})}),
                       corrections=False)
        measured = row["measured"] / GB_PER_GIB if row["unit"] == "GB" else row["measured"]
        out.append(Comparison(row["id"], measured, est.figure(row["kind"]), row["kind"], row["source"]))
    return out


def table(comparisons: list[Comparison]) -> str:
    lines = [f"{'row':<40} {'kind':<9} {'measured':>9} {'estimate':>9} {'error':>7}"]
    for c in comparisons:
        lines.append(f"{c.id:<40} {c.kind:<9} {c.measured_gib:>8.2f}G {c.estimate_gib:>8.2f}G {c.error:>+7.1%}")
    errs = [abs(c.error) for c in comparisons]
    lines.append(f"median |error| {statistics.median(errs):.1%}, max {max(errs):.1%} over {len(errs)} rows (GiB)")
    return "\n".join(lines)


def main() -> None:  # python -m tunedoc.profiles.measured [tests/profiles/configs]
    print(table(compare(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/profiles/configs"))))
