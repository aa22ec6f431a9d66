"""One error type for everything that can go wrong talking to the Hub, with the fix in words.

`HubError.kind` is stable for scripts (`--json`) and for the TUI, which picks an icon and a next step from it:
gated, not_found, network, disk, auth, corrupt, cancelled, bad_input, server, missing (an optional library such
as modelscope is not installed; the hint is the pip command).
"""

from __future__ import annotations

import errno

MIRROR_HINT = "set HF_ENDPOINT to a mirror, e.g. `export HF_ENDPOINT=https://hf-mirror.com`"
MODELSCOPE_HINT = "or get the model from ModelScope with `--source modelscope` (pip install 'tunedoc[modelscope]')"


class HubError(Exception):
    """A Hub or download failure a user can act on: `message` says what happened, `hint` says the fix."""

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint}


def gated_error(repo: str, endpoint: str, has_token: bool) -> HubError:
    url = f"{endpoint}/{repo}"
    if has_token:
        return HubError(
            "gated",
            f"{repo} is gated and the token in use has no access to it (403).",
            f"accept the license at {url} with the account that owns the token, wait for approval if it is manual, "
            "then retry; or set HF_TOKEN to a token of an account that has access",
        )
    return HubError(
        "gated",
        f"{repo} is gated: downloading it needs an account that accepted its license (401).",
        f"accept the license at {url}, then set HF_TOKEN or run `tunedoc login`",
    )


def disk_full_error(what: str, exc: OSError | None = None) -> HubError:
    detail = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return HubError(
        "disk",
        f"the disk filled up while writing {what}{detail}; the partial file is kept as .incomplete, not as complete",
        "free some space (`tunedoc models` lists what the cache holds, `tunedoc models rm REPO` frees it) "
        "or point HF_HUB_CACHE at a bigger disk, then run the same download again to resume",
    )


def translate(exc: BaseException, *, repo: str, endpoint: str, revision: str | None = None,
              has_token: bool = False) -> HubError:
    """Map an exception from huggingface_hub / httpx2 / the OS to a HubError with a fix."""
    if isinstance(exc, HubError):
        return exc
    from huggingface_hub import errors as hf_errors

    rev = revision or "main"
    if isinstance(exc, hf_errors.HFValidationError):
        return HubError("bad_input", f"{repo!r} is not a valid repository id: {_first_line(exc)}",
                        "use the form owner/name, e.g. Qwen/Qwen2.5-0.5B")
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return HubError("network", "HF_HUB_OFFLINE is set, so tunedoc may not contact the Hub",
                        "unset HF_HUB_OFFLINE (or HF_HUB_OFFLINE=0) to search or download")
    if isinstance(exc, hf_errors.GatedRepoError):
        return gated_error(repo, endpoint, has_token)
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return HubError(
            "not_found",
            f"revision {rev!r} of {repo} does not exist on {endpoint}",
            f"check the branch, tag or commit at {endpoint}/{repo}/tree/main, or leave out --revision",
        )
    if isinstance(exc, (hf_errors.RemoteEntryNotFoundError, hf_errors.EntryNotFoundError)):
        return HubError("not_found", f"a file of {repo}@{rev} is missing on {endpoint}: {_first_line(exc)}",
                        "the repository changed while downloading; run the command again")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        hint = f"check the name (owner/name) at {endpoint}/{repo}"
        if not has_token:
            hint += "; if it is private, set HF_TOKEN or run `tunedoc login`"
        return HubError("not_found", f"model {repo} was not found on {endpoint}", hint)
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return HubError("auth", f"the Hub at {endpoint} rejected the token (401 invalid credentials)",
                            "create a new read token at https://huggingface.co/settings/tokens, then "
                            "`tunedoc login` or set HF_TOKEN")
        if status == 403:
            return HubError("auth", f"access to {repo} is forbidden for this token (403)",
                            "use a token with read access to this repository")
        if status == 429:
            return HubError("server", f"{endpoint} is rate limiting requests (429)",
                            "wait a minute and retry; logging in (`tunedoc login`) raises the limits")
        if status is not None and status >= 500:
            return HubError("server", f"{endpoint} answered {status} (server error)",
                            f"retry later; if it persists, {MIRROR_HINT}")
        return HubError("server", f"{endpoint} answered {status}: {_first_line(exc)}", "")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_error(repo, exc)
    if _is_network_error(exc):
        return HubError(
            "network",
            f"cannot reach {endpoint}: {_first_line(exc) or type(exc).__name__}",
            f"check the connection and any proxy (HTTPS_PROXY); if the host is blocked where you are, {MIRROR_HINT}, "
            f"{MODELSCOPE_HINT}",
        )
    if isinstance(exc, ValueError) and "json" in type(exc).__name__.lower():
        return HubError("network", f"{endpoint} did not answer like a Hugging Face Hub (not JSON)",
                        f"check HF_ENDPOINT (a captive portal or proxy page?); {MIRROR_HINT}")
    return HubError("error", f"{type(exc).__name__}: {_first_line(exc)}", "")


def _is_network_error(exc: BaseException) -> bool:
    import httpx2

    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return True
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled)):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and _is_network_error(cause)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
