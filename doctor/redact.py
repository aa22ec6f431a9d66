"""Redaction for shareable doctor output: user names, home paths, host names and tokens.

    safe = redact_text(text)                 # any text (a saved JSON file, a log)
    data = redact_obj(facts.to_dict())       # every string inside a JSON-like object

What goes: Hugging Face tokens (`hf_...`), `Bearer ...` / `Authorization: ...` values, `token=...` style
assignments, this machine's host name, this user's name and home directory (replaced with `~`), and the user
part of paths like `/home/<user>/`, `/Users/<user>/`, `C:\\Users\\<user>\\` for any user. What stays: versions,
GPU names, package names, system paths (`/usr/local/cuda`), so the file still diagnoses the machine.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunedoc.doctor.facts import Facts

REDACTED = "<redacted>"

_TOKEN_PATTERNS = [
    re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"),  # Hugging Face user access tokens
    re.compile(r"\bapi_org_[A-Za-z0-9]{20,}\b"),  # old HF org tokens
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,})\b"),  # GitHub tokens pasted along with logs
]
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@", re.I)  # https://user:pw@host
_BEARER = re.compile(r"(?i)\b(Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_ASSIGN = re.compile(r"(?i)\b((?:HF_TOKEN|HUGGING_FACE_HUB_TOKEN|[A-Z_]*API_KEY|[A-Z_]*SECRET[A-Z_]*|password)\s*[=:]\s*)"
                     r"(['\"]?)[^\s'\"]+\2")
# /home/alice/..., /Users/alice/..., C:\Users\alice\..., /mnt/c/Users/alice/...
_HOME_PATHS = [
    re.compile(r"(?<![A-Za-z0-9_])(/home/)([^/\s\"']+)"),
    re.compile(r"(?<![A-Za-z0-9_])(/Users/)([^/\s\"']+)"),
    # Windows user names may hold spaces ("Bob Smith"): up to the next backslash, else up to whitespace
    re.compile(r"(?i)([A-Z]:\\{1,2}Users\\{1,2})([^\\\"'\r\n]+?(?=\\)|[^\\\s\"']+)"),
    re.compile(r"(?i)(/mnt/[a-z]/Users/)([^/\s\"']+)"),
]
_KEEP_USERS = {"public", "default", "all users", "shared", REDACTED}


def _identity() -> tuple[list[str], list[str], list[str]]:
    """This machine's home directories, user names and host names, longest first (so replacements nest)."""
    homes, users, hosts = set(), set(), set()
    home = os.path.expanduser("~")
    if home and home not in ("/", "~") and len(home) > 3:
        homes.add(home)
        homes.add(os.path.realpath(home))
    for get in (getpass.getuser, lambda: os.environ.get("USER"), lambda: os.environ.get("USERNAME")):
        try:
            u = get()
        except Exception:
            u = None
        # "root" or one-letter names would redact ordinary words; their home paths are still covered above
        if u and len(u) >= 3 and u.lower() not in ("root", "user", "admin"):
            users.add(u)
    for get in (socket.gethostname, lambda: os.environ.get("COMPUTERNAME"), lambda: os.environ.get("HOSTNAME")):
        try:
            h = get()
        except Exception:
            h = None
        if h and len(h) >= 3 and h.lower() not in ("localhost",):
            hosts.add(h)
            hosts.add(h.split(".")[0])
    key = lambda s: -len(s)  # noqa: E731
    return sorted(homes, key=key), sorted(users, key=key), sorted(hosts, key=key)


def redact_text(text: str, extra: list[str] | None = None) -> str:
    """Redact secrets and personal names from `text`. `extra`: more literal strings to hide (e.g. a project name)."""
    if not text:
        return text
    homes, users, hosts = _identity()
    for pat in _TOKEN_PATTERNS:
        text = pat.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _ASSIGN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    for home in homes:
        for variant in {home, home.replace("\\", "\\\\"), home.replace("\\", "/")}:
            text = re.sub(re.escape(variant) + r"(?=[\\/\s\"',:;]|$)", "~", text)
    for pat in _HOME_PATHS:
        text = pat.sub(lambda m: m.group(1) + (m.group(2) if m.group(2).lower() in _KEEP_USERS else REDACTED), text)
    for literal in [*(extra or []), *hosts, *users]:
        if literal:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(literal)}(?![A-Za-z0-9])", REDACTED, text)
    return text


def redact_obj(obj: Any, extra: list[str] | None = None) -> Any:
    """Redact every string (keys included) in a JSON-like structure; the host name field is blanked."""
    if isinstance(obj, str):
        return redact_text(obj, extra)
    if isinstance(obj, list):
        return [redact_obj(v, extra) for v in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "hostname" and isinstance(v, str) and v:
                out[k] = REDACTED
            else:
                out[redact_text(k, extra) if isinstance(k, str) else k] = redact_obj(v, extra)
        return out
    return obj


def redact_facts(facts: "Facts") -> "Facts":
    """A redacted copy of `facts` (the original is left alone): what `--save` writes and the TUI shares."""
    from tunedoc.doctor.facts import Facts

    return Facts.from_dict(redact_obj(facts.to_dict()))
