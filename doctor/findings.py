"""Findings: what the rules conclude from facts. Ids are a public contract for `--json` users."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info", "ok")

# Areas, in the order the summary shows them.
AREAS = ("driver", "gpu", "cuda", "torch", "bnb", "platform", "hf")
AREA_TITLES = {
    "driver": "NVIDIA driver",
    "gpu": "GPU",
    "cuda": "CUDA toolkit",
    "torch": "PyTorch",
    "bnb": "bitsandbytes",
    "platform": "Platform",
    "hf": "Hugging Face",
}


@dataclass
class Fix:
    title: str
    commands: list[str] = field(default_factory=list)  # exact, for `shell`; empty for a fix that is only advice
    shell: str = "bash"  # bash | powershell | cmd
    url: str | None = None
    # True when the fix only changes the target Python's packages or environment variables (the TUI may apply
    # it after confirmation); driver installs, reboots and system changes are shown, never run.
    applicable: bool = False


@dataclass
class Finding:
    id: str
    severity: str  # error | warning | info | ok
    area: str  # one of AREAS
    title: str  # one sentence for the summary line
    detail: str = ""  # the explanation
    evidence: list[str] = field(default_factory=list)  # facts or report lines it rests on
    fixes: list[Fix] = field(default_factory=list)
    explains: list[str] = field(default_factory=list)  # ids of other findings this one causes (root cause first)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        fixes = [Fix(**f) for f in d.get("fixes", [])]
        return cls(**{**d, "fixes": fixes})


def worst(findings: list[Finding]) -> str:
    """The most severe severity among findings ("ok" when there are none)."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return min((f.severity for f in findings), key=order.__getitem__, default="ok")
