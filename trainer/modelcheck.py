"""Is `--model` something a run can load? Checked by `tunedoc train` before a run directory exists, so a bad model
is one sentence and exit code 2, not a run that crashes in the trainer with a raw exception.

    problem = check_model("./my-model")            # None when it looks loadable
    problem = check_model("Qwen/Qwen2.5-0.5B")     # cached, or reachable on the Hub (a short timeout)

A local folder needs a readable config.json and tokenizer files. A Hub id is fine when huggingface_hub's cache
holds its config.json (`try_to_load_from_cache`); otherwise, unless HF_HUB_OFFLINE is set, one model-info request
with a short timeout says whether it exists. No torch, no transformers.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

LOOKUP_TIMEOUT_S = 5.0
# any one of these is a tokenizer transformers can load (fast tokenizer, sentencepiece, BPE, WordPiece)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt",
                   "tiktoken.model", "qwen.tiktoken")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
MIRROR = "HF_ENDPOINT=https://hf-mirror.com"


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").strip().rstrip("/")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model(model: str, timeout: float = LOOKUP_TIMEOUT_S) -> str | None:
    """One sentence saying what is wrong with `model` (a folder or a Hub id), or None when a run can load it."""
    if not model or not model.strip():
        return "--model is empty; pass a model folder or a Hub id such as Qwen/Qwen2.5-0.5B"
    path = Path(model).expanduser()
    if path.exists():
        return check_folder(path)
    if not _REPO_ID.match(model) or model.startswith((".", "~")) or "\\" in model:
        return f"model folder {model!r} does not exist (and it is not a Hub id of the form owner/name)"
    return check_hub_id(model, timeout)


def check_folder(path: Path, label: str | None = None) -> str | None:
    label = label or f"model folder {str(path)!r}"
    if not path.is_dir():
        return f"{label} is a file, not a folder with config.json and the weights"
    config = path / "config.json"
    if not config.is_file():
        return (f"{label} has no config.json: it is not a transformers model folder "
                "(download one with `tunedoc download OWNER/NAME`, or pass a Hub id)")
    problem = _config_problem(config, label)
    if problem:
        return problem
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return (f"{label} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...): copy the tokenizer "
                "from the base model into it")
    return None


def _config_problem(config: Path, label: str) -> str | None:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        return f"{label}: config.json is not valid JSON ({config}:{e.lineno}:{e.colno}: {e.msg})"
    except (OSError, UnicodeDecodeError) as e:
        return f"{label}: config.json cannot be read ({e})"
    if not isinstance(data, dict):
        return f"{label}: config.json holds a {type(data).__name__}, not the model's settings (a JSON object)"
    return None


def check_hub_id(repo: str, timeout: float = LOOKUP_TIMEOUT_S) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo, "config.json")
    except Exception:  # noqa: BLE001 - an invalid id or an unreadable cache: the look-up below says more
        cached = None
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        problem = _config_problem(Path(cached), f"cached model {repo}")
        if problem:
            return problem
        if not any(isinstance(try_to_load_from_cache(repo, name), str) for name in TOKENIZER_FILES):
            if _offline():
                return (f"cached model {repo} has no tokenizer files in {snapshot} and HF_HUB_OFFLINE is set; "
                        f"download it completely (`tunedoc download {repo}`) or unset HF_HUB_OFFLINE")
        return None
    ep = _endpoint()
    if _offline():
        return (f"model {repo} is not in the local cache and HF_HUB_OFFLINE is set, so it cannot be downloaded; "
                f"download it where there is a network (`tunedoc download {repo}`), or pass a local folder")
    return _lookup(repo, ep, timeout)


def _lookup(repo: str, ep: str, timeout: float) -> str | None:
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    try:
        HfApi(endpoint=ep).model_info(repo, timeout=timeout)
    except hf_errors.GatedRepoError:
        return (f"model {repo} is gated on {ep}: accept its license at {ep}/{repo}, then `tunedoc login` "
                "(or set HF_TOKEN)")
    except hf_errors.RepositoryNotFoundError:
        return (f"model {repo} was not found on {ep} (check the name at {ep}/{repo}; a private model needs "
                "`tunedoc login`), and it is not in the local cache")
    except hf_errors.HFValidationError as e:
        return f"{repo!r} is not a model folder or a valid Hub id: {str(e).splitlines()[0]}"
    except hf_errors.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        return f"{ep} answered {status} when asked about model {repo}; retry later, or use a mirror ({MIRROR})"
    except Exception as e:  # noqa: BLE001 - connection refused, DNS, timeout, proxy
        return (f"cannot reach {ep} within {timeout:g} s to fetch model {repo}, and it is not in the local cache "
                f"({type(e).__name__}); use a mirror ({MIRROR}), download it first (`tunedoc download {repo}`), "
                "or pass a local folder")
    return None


def local_file(model: str, name: str) -> Path | None:
    """`name` of a model folder, or of a Hub id in huggingface_hub's cache; None when not on this machine."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path / name if (path / name).is_file() else None
    if not _REPO_ID.match(model or ""):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, name)
    except Exception:  # noqa: BLE001 - an invalid id or an unreadable cache: not here
        return None
    return Path(cached) if isinstance(cached, str) else None


def chat_template_of(model: str) -> str | None:
    """The model's chat template text (all named templates together), None when it has none, "" when its
    tokenizer files are not on this machine yet."""
    jinja = local_file(model, "chat_template.jinja")
    if jinja is not None:
        return jinja.read_text(encoding="utf-8", errors="replace")
    found = False
    for name in ("chat_template.json", "tokenizer_config.json"):
        f = local_file(model, name)
        if f is None:
            continue
        found = True
        try:
            t = json.loads(f.read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(t, list):  # [{"name": "default", "template": "..."}, ...]
            t = "\n".join(str(x.get("template", "")) for x in t if isinstance(x, dict))
        if isinstance(t, str) and t:
            return t
    return None if found else ""


def checkpoint_problem(model: str, quant: str) -> str | None:
    """One sentence when the model's config.json (when on this machine) is a pre-quantized checkpoint tunedoc's
    trainer cannot train with this profile quant (GPTQ, AWQ, FP8, ...: no kernels; bitsandbytes: the profile's quant
    must be the checkpoint's)."""
    f = local_file(model, "config.json")
    if f is None:
        return None
    try:
        config = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # check_model reports it
    from tunedoc.profiles.archs import prequantized

    pq = prequantized(config) if isinstance(config, dict) else None
    if pq is None:
        return None
    if not pq.trainable:
        return f"{model} is a pre-quantized {pq.text} checkpoint: {pq.why}"
    if quant != pq.quant and not (quant.startswith("nf4") and pq.quant.startswith("nf4")):
        return (f"{model} is stored {pq.text} already, so it loads that way whatever the profile says: train it "
                f"with --set quant={pq.quant} (the checkpoint's), or use the unquantized model for quant={quant}")
    return None
