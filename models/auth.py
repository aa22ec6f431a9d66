"""Storing a Hugging Face token the way huggingface_hub does (HF_HOME/token and stored_tokens), so `hf`,
transformers and tunedoc all use it. The token is never printed or logged."""

from __future__ import annotations

from dataclasses import dataclass

from tunedoc.models.errors import HubError, translate
from tunedoc.models.hub import endpoint


@dataclass
class LoginResult:
    username: str | None  # None when the endpoint could not check the token (some mirrors)
    token_name: str
    token_path: str
    validated: bool
    env_overrides: bool  # HF_TOKEN is set and wins over the stored token


def login(token: str, endpoint_url: str | None = None) -> LoginResult:
    """Check `token` against the Hub (whoami) and store it as the active token."""
    import os

    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    token = (token or "").strip()
    if not token:
        raise HubError("bad_input", "no token given", "create one at https://huggingface.co/settings/tokens")
    if token.startswith("api_org"):
        raise HubError("bad_input", "this is an organization token", "use a personal access token")
    ep = (endpoint_url or endpoint()).rstrip("/")
    username, name, validated = None, "tunedoc", False
    try:
        who = HfApi(endpoint=ep).whoami(token=token)
        username = who.get("name")
        access = (who.get("auth") or {}).get("accessToken") or {}
        name = access.get("displayName") or f"oauth-{username}"
        validated = True
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise HubError("auth", f"{ep} rejected this token ({status})",
                           "copy the token again from https://huggingface.co/settings/tokens (read access is enough)"
                           ) from None
        if status != 404:  # a mirror without /api/whoami-v2 answers 404: store the token unchecked
            raise translate(e, repo="(login)", endpoint=ep) from None
    except Exception as e:  # noqa: BLE001
        raise translate(e, repo="(login)", endpoint=ep) from None
    _store(token, name)
    return LoginResult(username=username, token_name=name, token_path=constants.HF_TOKEN_PATH,
                       validated=validated, env_overrides=bool(os.environ.get("HF_TOKEN")))


def _store(token: str, name: str) -> None:
    try:  # huggingface_hub's own bookkeeping: stored_tokens (named) + the active token file
        from huggingface_hub.utils._auth import _save_token
        from huggingface_hub._login import _set_active_token

        _save_token(token=token, token_name=name)
        _set_active_token(token_name=name, add_to_git_credential=False)
    except ImportError:  # layout changed: write the active token file, which every version reads
        from pathlib import Path

        from huggingface_hub import constants

        path = Path(constants.HF_TOKEN_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token)
        path.chmod(0o600)
