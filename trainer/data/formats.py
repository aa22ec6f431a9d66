"""Reading and validating conversation data: alpaca, sharegpt and openai records, JSON arrays or JSONL, and
LLaMA-Factory data directories (dataset_info.json, with data sets picked by name) and its v1 format (content parts
`{"type": "text"|"reasoning"|"tool_call", "value": ...}`, `loss_weight` per message, a YAML spec of data sets).
No torch, no transformers: this runs before any model loads.

Data that is not supervised fine-tuning data (preference pairs, KTO labels, pretraining text, images) gets one
sentence per file instead of one error per record. Unfilled placeholders such as LLaMA-Factory's identity.json
`{{name}}`/`{{author}}` are a problem until filled (`fill=`).

Every problem in the data is collected, then raised together as one DataError, so a user fixes a file in one go.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("alpaca", "sharegpt", "openai")
ROLES = ("system", "user", "assistant", "tool")
MAX_LISTED = 40  # problems printed before "... and N more"
EXTRA_KEYS = ("reasoning_content", "tool_calls", "loss_weight")  # message keys kept beside role and content
PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")

# one sentence per file for data tunedoc does not train on (instead of an error per record)
NOT_SFT = {
    "preference": "preference data (chosen/rejected answer pairs, for DPO/ORPO): tunedoc trains supervised "
                  "fine-tuning (SFT) on conversations that end with the answer to learn; train pairs with "
                  "LLaMA-Factory (stage: dpo), or keep only the chosen answers as SFT data",
    "kto": "KTO data (answers labelled desirable/undesirable): tunedoc trains supervised fine-tuning (SFT) on "
           "good answers only; train it with LLaMA-Factory (stage: kto), or keep the answers labelled true",
    "pretraining": "pretraining text (plain documents, no conversations): tunedoc trains supervised fine-tuning "
                   "(SFT) on conversations; continued pretraining is LLaMA-Factory's stage: pt",
    "multimodal": "multimodal data (images, videos or audio): tunedoc trains text-only models",
}

# role names as found in the wild -> our four roles. sharegpt's function_call is an assistant turn (a tool call),
# its observation is the tool's answer.
ROLE_ALIASES = {
    "system": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "function_call": "assistant", "model": "assistant",
    "tool": "tool", "observation": "tool", "function": "tool", "ipython": "tool",
}


@dataclass
class Problem:
    """One thing wrong with the data. `where` is "file.jsonl:12" (JSONL line) or "file.json:40 (record 3)"."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class DataError(ValueError):
    """The data cannot be used. `problems` has every problem found; str() lists them one per line (deduplicated,
    capped at MAX_LISTED with "... and N more")."""

    def __init__(self, problems: list[Problem]):
        seen, unique = set(), []
        for p in problems:
            if (p.where, p.message) not in seen:
                seen.add((p.where, p.message))
                unique.append(p)
        self.problems = unique
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} in the data:"]
        lines += [f"  {p}" for p in self.problems[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  ... and {n - MAX_LISTED} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()


@dataclass
class Conversation:
    """A normalized conversation. messages: [{"role": system|user|assistant|tool, "content": str}], at most one
    system message (first), then user/tool and assistant turns alternating, ending with an assistant turn.
    source: where it came from ("file.jsonl:12"). format: the format it was read as. tools: the tool (function)
    descriptions the record offers, passed to the chat template, or None."""

    messages: list[dict]
    source: str = ""
    format: str = ""
    tools: list | None = None


@dataclass
class Schema:
    """How to read one source: its format and LLaMA-Factory style column and tag names."""

    format: str
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)

    def col(self, key: str, default: str | None) -> str | None:
        return self.columns.get(key, default)


def default_schema(fmt: str) -> Schema:
    if fmt == "openai":
        return Schema("openai", {"messages": "messages", "system": "system", "tools": "tools"},
                      {"role_tag": "role", "content_tag": "content"})
    if fmt == "sharegpt":
        return Schema("sharegpt", {"messages": "conversations", "system": "system", "tools": "tools"},
                      {"role_tag": "from", "content_tag": "value"})
    return Schema("alpaca", {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                             "history": "history"})


# ------------------------------------------------------------------------------------------------------------------
# reading records


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def read_records(path: Path, problems: list[Problem]) -> list[tuple[str, object]]:
    """[(where, record)] from a JSON array or JSONL file. Bad JSON becomes a Problem with line and column.
    A JSON array is decoded record by record so each record knows its line."""
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.append(Problem(name, f"cannot read the file: {e.strerror or e}"))
        return []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problems.append(Problem(f"{name}:{_line_of(raw[:e.start].decode('utf-8', 'replace'), e.start)}",
                                f"not UTF-8 text (byte {e.start}): save the file as UTF-8"))
        return []
    start = _skip_ws(text, 0)
    if start == len(text):
        return []
    if text[start] == "[":
        return _read_array(text, start, name, problems)
    return _read_jsonl(text, name, problems)


def _read_array(text: str, i: int, name: str, problems: list[Problem]) -> list[tuple[str, object]]:
    dec = json.JSONDecoder()
    out: list[tuple[str, object]] = []
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "]":
        return out
    while True:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            hint = " (a trailing comma before ']'?)" if text[e.pos:e.pos + 1] == "]" else ""
            problems.append(Problem(f"{name}:{e.lineno}", f"bad JSON: {e.msg} (line {e.lineno} column {e.colno}, "
                                                          f"in record {len(out) + 1}){hint}; nothing after it was "
                                                          "read"))
            return out
        out.append((f"{name}:{_line_of(text, i)} (record {len(out) + 1})", obj))
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < len(text) and text[i] == "]":
            rest = _skip_ws(text, i + 1)
            if rest < len(text):
                problems.append(Problem(f"{name}:{_line_of(text, rest)}", "bad JSON: extra data after the closing ]"))
            return out
        line = _line_of(text, min(i, len(text) - 1))
        what = "end of file" if i >= len(text) else repr(text[i])
        problems.append(Problem(f"{name}:{line}", f"bad JSON: expected ',' or ']' after record {len(out)}, "
                                                  f"found {what}; nothing after it was read"))
        return out


def _read_jsonl(text: str, name: str, problems: list[Problem]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"{name}:{n}", json.loads(line)))
        except json.JSONDecodeError as e:
            hint = " (a JSON array or pretty-printed object? JSONL needs one object per line)" \
                if line.strip() in ("{", "[", "}", "]", "},", "],") else ""
            problems.append(Problem(f"{name}:{n}", f"bad JSON: {e.msg} at column {e.colno}{hint}"))
    return out


# ------------------------------------------------------------------------------------------------------------------
# records -> conversations


def detect_format(record: object) -> str | None:
    """The format of one record by its keys, or None."""
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    return None


def _text(value, where: str, what: str, problems: list[Problem], required: bool = True) -> str | None:
    """A text field: str (or a list of openai text parts). Missing/None -> None (a problem when required)."""
    if value is None:
        if required:
            problems.append(Problem(where, f"missing field {what!r}"))
        return None
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        parts = []
        for p in value:
            body = p.get("text", p.get("value"))
            if p.get("type", "text") != "text" or not isinstance(body, str):
                problems.append(Problem(where, f"{what}: only text parts are read here, found type "
                                               f"{p.get('type')!r}"))
                return None
            parts.append(body)
        return "".join(parts)
    if not isinstance(value, str):
        problems.append(Problem(where, f"{what} is {type(value).__name__}, expected text"))
        return None
    return value


def _parts(value: list, where: str, what: str, problems: list[Problem]) -> dict | None:
    """A message's content parts (openai `text`, LLaMA-Factory v1 `value`) -> {"content", "reasoning_content"?,
    "tool_calls"?}, as LLaMA-Factory v1 hands them to the chat template."""
    text, reasoning, calls = [], [], []
    for i, p in enumerate(value):
        kind = p.get("type", "text")
        body = p.get("text", p.get("value"))
        if kind in ("image_url", "video_url", "audio_url", "image", "video", "audio", "input_audio"):
            problems.append(Problem(where, f"{what}: a {kind} part: {NOT_SFT['multimodal']}"))
            return None
        if kind not in ("text", "reasoning", "tool_call") or not isinstance(body, str):
            problems.append(Problem(where, f"{what}[{i}]: unknown part type {kind!r} (text, reasoning and tool_call "
                                           "are read)" if kind not in ("text", "reasoning", "tool_call")
                                    else f"{what}[{i}]: a {kind} part without text in 'value' or 'text'"))
            return None
        if kind == "tool_call":
            try:
                call = json.loads(body)
            except json.JSONDecodeError as e:
                problems.append(Problem(where, f"{what}[{i}]: tool_call value is not valid JSON: {e.msg}"))
                return None
            if not isinstance(call, dict) or "name" not in call:
                problems.append(Problem(where, f"{what}[{i}]: tool_call must be a JSON object with 'name' and "
                                               "'arguments'"))
                return None
            calls.append({"type": "function", "function": {"name": call["name"],
                                                           "arguments": call.get("arguments", {})}})
        else:
            (reasoning if kind == "reasoning" else text).append(body)
    out: dict = {"content": "".join(text)}
    if reasoning:
        out["reasoning_content"] = "".join(reasoning)
    if calls:
        out["tool_calls"] = calls
    return out


def _alpaca(rec: dict, where: str, schema: Schema, problems: list[Problem]) -> list[dict]:
    c = schema.col
    msgs: list[dict] = []
    system = _text(rec.get(c("system", "system")), where, c("system", "system"), problems, required=False)
    if system:
        msgs.append({"role": "system", "content": system})
    hist_key = c("history", "history")
    history = rec.get(hist_key) if hist_key else None
    if history is not None:
        if not isinstance(history, list):
            problems.append(Problem(where, f"{hist_key!r} must be a list of [instruction, response] pairs"))
        else:
            for i, pair in enumerate(history):
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                    problems.append(Problem(where, f"{hist_key}[{i}] must be [instruction, response], two texts"))
                    continue
                msgs += [{"role": "user", "content": pair[0], "_at": f"{hist_key}[{i}][0]"},
                         {"role": "assistant", "content": pair[1], "_at": f"{hist_key}[{i}][1]"}]
    prompt_key, query_key, resp_key = c("prompt", "instruction"), c("query", "input"), c("response", "output")
    prompt = _text(rec.get(prompt_key), where, prompt_key, problems, required=False)
    query = _text(rec.get(query_key), where, query_key, problems, required=False)
    if prompt is None and query is None and prompt_key not in rec:
        problems.append(Problem(where, f"missing field {prompt_key!r}"))
    user = "\n".join(t for t in (prompt, query) if t)
    response = rec.get(resp_key)
    if isinstance(response, list) and all(isinstance(x, str) for x in response):
        problems.append(Problem(where, f"{resp_key!r} is a list (a preference/ranking record): tunedoc trains on "
                                       "one response per record"))
        response = None
    else:
        response = _text(response, where, resp_key, problems)
    if response is None:
        return []
    msgs += [{"role": "user", "content": user, "_at": f"{prompt_key}+{query_key}"},
             {"role": "assistant", "content": response, "_at": resp_key}]
    return msgs


def _chat(rec: dict, where: str, schema: Schema, problems: list[Problem]) -> list[dict]:
    """sharegpt and openai records: a list of messages under a column, with role/content tags."""
    key = schema.col("messages", "messages" if schema.format == "openai" else "conversations")
    turns = rec.get(key)
    if turns is None:
        other = "conversations" if key == "messages" else "messages"
        hint = f" (found {other!r}: is this {detect_format(rec)} format?)" if other in rec else ""
        problems.append(Problem(where, f"missing field {key!r}{hint}"))
        return []
    if not isinstance(turns, list):
        problems.append(Problem(where, f"{key!r} is {type(turns).__name__}, expected a list of messages"))
        return []
    role_tag, content_tag = schema.tags.get("role_tag"), schema.tags.get("content_tag")
    # the dataset's own tag names map to roles first, then the common aliases
    names = {schema.tags[t]: r for t, r in (("user_tag", "user"), ("assistant_tag", "assistant"),
                                            ("system_tag", "system"), ("observation_tag", "tool"),
                                            ("function_tag", "assistant")) if t in schema.tags}
    msgs: list[dict] = []
    sys_key = schema.col("system", "system")
    system = _text(rec.get(sys_key), where, sys_key, problems, required=False) if sys_key else None
    if system:
        msgs.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        at = f"{key}[{i}]"
        if not isinstance(turn, dict):
            problems.append(Problem(where, f"{at} is {type(turn).__name__}, expected an object"))
            continue
        rtag = role_tag if role_tag in turn else ("role" if "role" in turn else "from")
        ctag = content_tag if content_tag in turn else ("content" if "content" in turn else "value")
        if rtag not in turn:
            problems.append(Problem(where, f"{at}: missing field {(role_tag or 'role')!r}"))
            continue
        raw_role = turn[rtag]
        role = names.get(raw_role) or (ROLE_ALIASES.get(raw_role.lower()) if isinstance(raw_role, str) else None)
        if role is None:
            known = sorted(set(names) | {"system", "user", "assistant", "tool", "human", "gpt", "observation",
                                          "function_call"})
            problems.append(Problem(where, f"{at}: unknown role {raw_role!r} (expected one of {', '.join(known)})"))
            continue
        content = turn.get(ctag)
        extra = {k: turn[k] for k in ("reasoning_content", "tool_calls") if turn.get(k)}
        if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
            got = _parts(content, where, f"{at}.{ctag}", problems)
            if got is None:
                continue
            content = got.pop("content")
            extra.update(got)
        elif content is None and extra.get("tool_calls"):  # openai tool calls without text: train on them as JSON
            content = json.dumps(extra.pop("tool_calls"), ensure_ascii=False)
        content = _text(content, where, f"{at}.{ctag}", problems)
        if content is None:
            continue
        msg = {"role": role, "content": content, "_at": at, **extra}
        weight = turn.get("loss_weight")
        if role == "assistant" and isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight == 0:
            msg["loss_weight"] = 0.0  # LLaMA-Factory v1: an answer shown as context, not trained on
        msgs.append(msg)
    return msgs


def _tools(rec: dict, where: str, schema: Schema, problems: list[Problem]) -> list | None:
    """The record's tool descriptions: a list, or a JSON string of one (LLaMA-Factory's "tools" column)."""
    key = schema.col("tools", "tools")
    value = rec.get(key) if key else None
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            problems.append(Problem(where, f"{key!r} is not valid JSON: {e.msg} at column {e.colno}"))
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        problems.append(Problem(where, f"{key!r} must be a list of tool descriptions"))
        return None
    return value


def check_order(msgs: list[dict], where: str, problems: list[Problem]) -> None:
    """Roles in order and texts not empty: [system] then (user|tool, assistant)*, ending with assistant."""
    if not msgs:
        problems.append(Problem(where, "no messages"))
        return
    prev = None
    for i, m in enumerate(msgs):
        at = m.get("_at") or f"turn {i + 1}"
        role = m["role"]
        if not m["content"].strip() and not m.get("tool_calls") and not m.get("reasoning_content"):
            problems.append(Problem(where, f"{at}: empty {role} text"))
        if role == "system":
            if i != 0:
                problems.append(Problem(where, f"{at}: a system message may only come first"))
            prev = "system"
            continue
        side = "assistant" if role == "assistant" else "prompt"
        if prev in (None, "system") and role != "user":
            problems.append(Problem(where, f"{at}: the conversation must start with a user turn, found {role}"))
        elif prev == side == "prompt":
            problems.append(Problem(where, f"{at}: two {'user' if role == 'user' else 'user/tool'} turns in a row "
                                           "(merge them, or add the assistant's answer between them)"))
        elif prev == side == "assistant":
            problems.append(Problem(where, f"{at}: two assistant turns in a row"))
        prev = side
    if prev != "assistant":
        problems.append(Problem(where, "the conversation does not end with an assistant turn (nothing to learn "
                                       "from the last turn)"))


def to_conversation(rec: object, where: str, schema: Schema, problems: list[Problem]) -> Conversation | None:
    """One record -> a Conversation, or None with its problems appended."""
    if not isinstance(rec, dict):
        problems.append(Problem(where, f"expected a JSON object, found {type(rec).__name__}"))
        return None
    before = len(problems)
    msgs = _alpaca(rec, where, schema, problems) if schema.format == "alpaca" else _chat(rec, where, schema, problems)
    tools = _tools(rec, where, schema, problems) if schema.format != "alpaca" else None
    if len(problems) == before:
        check_order(msgs, where, problems)
    if len(problems) > before:
        return None
    return Conversation([{"role": m["role"], "content": m["content"], **{k: m[k] for k in EXTRA_KEYS if k in m}}
                         for m in msgs], where, schema.format, tools)


def not_sft(records: list[tuple[str, object]]) -> str | None:
    """"preference" | "kto" | "pretraining" when the first record says the file is not SFT data, else None."""
    first = next((r for _, r in records if isinstance(r, dict)), None)
    if first is None:
        return None
    keys = set(first)
    if {"chosen", "rejected"} <= keys or {"chosen_messages", "rejected_messages"} <= keys:
        return "preference"
    if "kto_tag" in keys or (isinstance(first.get("label"), bool) and ("messages" in keys or "conversations" in keys)):
        return "kto"
    if keys == {"text"}:
        return "pretraining"
    return None


def load_file(path: Path, fmt: str, problems: list[Problem], schema: Schema | None = None) -> list[Conversation]:
    if path.suffix == ".txt":
        problems.append(Problem(path.name, NOT_SFT["pretraining"]))
        return []
    records = read_records(path, problems)
    kind = not_sft(records)
    if kind:
        problems.append(Problem(path.name, NOT_SFT[kind]))
        return []
    if schema is None:
        if fmt == "auto":
            fmt = next((f for _, r in records if (f := detect_format(r))), None)
            if fmt is None:
                if records:
                    first = records[0][1]
                    keys = ", ".join(sorted(first)[:8]) if isinstance(first, dict) else type(first).__name__
                    problems.append(Problem(records[0][0], f"cannot tell the format: no record has 'messages' "
                                                           f"(openai), 'conversations' (sharegpt) or 'instruction'/"
                                                           f"'output' (alpaca); found {keys}. Use --format."))
                return []
        schema = default_schema(fmt)
    out = []
    for where, rec in records:
        conv = to_conversation(rec, where, schema, problems)
        if conv is not None:
            out.append(conv)
    return out


# ------------------------------------------------------------------------------------------------------------------
# LLaMA-Factory data directories

DATA_SUFFIXES = (".json", ".jsonl")
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


def hub_hint(name: str, desc: dict, directory: Path) -> str:
    """How to get a dataset_info.json entry that lives on a hub into the folder, as commands to paste."""
    ways = []
    if desc.get("hf_hub_url"):
        ways.append(f"`huggingface-cli download --repo-type dataset {desc['hf_hub_url']} --local-dir "
                    f"{directory / name}` (HF_ENDPOINT=https://hf-mirror.com where the Hub is blocked)")
    if desc.get("ms_hub_url"):
        ways.append(f"`modelscope download --dataset {desc['ms_hub_url']} --local_dir {directory / name}`")
    where = next(f"{k} {desc[k]!r}" for k in HUB_KEYS if desc.get(k))
    get = " or ".join(ways) if ways else "download it"
    return (f"on a hub ({where}), not in this folder: get it with {get}, then set \"file_name\": \"{name}\" in its "
            "dataset_info.json entry (tunedoc reads .json/.jsonl files)")


def _entry_kind(desc: dict) -> str | None:
    """What a dataset_info.json entry says it is, when that is not SFT data."""
    cols = desc.get("columns") or {}
    if desc.get("ranking"):
        return "preference"
    if "kto_tag" in cols:
        return "kto"
    if any(k in cols for k in ("images", "videos", "audios")):
        return "multimodal"
    if desc.get("formatting", "alpaca") == "alpaca" and "prompt" in cols and "response" not in cols:
        return "pretraining"
    if str(desc.get("file_name", "")).endswith(".txt"):
        return "pretraining"
    return None


def load_dataset_dir(directory: Path, problems: list[Problem], names: list[str] | None = None,
                     notes: list[str] | None = None) -> list[Conversation]:
    """The data sets of directory/dataset_info.json that `names` picks (as LLaMA-Factory's `dataset: a,b`), read
    with their formatting, columns and tags. Entries not picked are not checked. Without names: every local SFT
    entry; hub, preference, KTO, pretraining and multimodal entries are skipped and said so in `notes`."""
    info_path = directory / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        problems.append(Problem(f"dataset_info.json:{e.lineno}", f"bad JSON: {e.msg} at column {e.colno}"))
        return []
    if not isinstance(info, dict):
        problems.append(Problem("dataset_info.json", "expected an object of data set name -> description"))
        return []
    if names:
        missing = [n for n in names if n not in info]
        if missing:
            local = [k for k, v in info.items() if isinstance(v, dict) and v.get("file_name")]
            listed = ", ".join(local[:15]) + (f" (and {len(local) - 15} more)" if len(local) > 15 else "")
            problems += [Problem("dataset_info.json", f"no data set named {n!r}; its local data sets: {listed} "
                                                      f"({len(info)} entries in all)") for n in missing]
        order = [n for n in names if n in info]
    else:
        order = list(info)
    skipped: dict[str, list[str]] = {}
    out: list[Conversation] = []
    for name in order:
        desc = info[name]
        where = f"dataset_info.json [{name}]"
        if not isinstance(desc, dict):
            problems.append(Problem(where, "expected an object with file_name, formatting, columns, tags"))
            continue
        hub = next((k for k in HUB_KEYS if desc.get(k)), None)
        kind = "hub" if hub and not desc.get("file_name") else _entry_kind(desc)
        if kind and not names:
            skipped.setdefault(kind, []).append(name)
            continue
        if kind == "hub":
            problems.append(Problem(where, hub_hint(name, desc, directory)))
            continue
        if kind:
            problems.append(Problem(where, NOT_SFT[kind]))
            continue
        fmt = desc.get("formatting", "alpaca")
        if fmt not in ("alpaca", "sharegpt", "openai"):
            problems.append(Problem(where, f"formatting {fmt!r} is not supported (alpaca or sharegpt)"))
            continue
        file_name = desc.get("file_name")
        if not file_name:
            problems.append(Problem(where, "missing field 'file_name'"))
            continue
        target = directory / file_name
        if not target.exists():
            problems.append(Problem(where, f"file_name {file_name!r} not found in {directory}"))
            continue
        files = sorted(p for p in target.iterdir() if p.suffix in DATA_SUFFIXES) if target.is_dir() else [target]
        base = default_schema(fmt)
        schema = Schema(fmt, {**base.columns, **(desc.get("columns") or {})}, {**base.tags, **(desc.get("tags") or {})})
        for f in files:
            out += load_file(f, fmt, problems, schema)
    if notes is not None and skipped:
        what = {"hub": "on a hub, not in this folder", "preference": "preference data", "kto": "KTO data",
                "pretraining": "pretraining text", "multimodal": "multimodal"}
        for kind, skipped_names in skipped.items():
            shown = ", ".join(skipped_names[:8]) + (f" and {len(skipped_names) - 8} more" if len(skipped_names) > 8
                                                    else "")
            notes.append(f"not read: {len(skipped_names)} data set{'s' if len(skipped_names) != 1 else ''} "
                         f"{what[kind]} ({shown})")
        notes.append("pick data sets by name with --dataset NAME[,NAME] (LLaMA-Factory's `dataset:`)")
    return out


# ------------------------------------------------------------------------------------------------------------------
# LLaMA-Factory v1: a YAML spec of data sets (name -> path, source, converter)


def _find_v1_path(spec_path: Path, rel: str) -> Path | None:
    """A spec's `path` as LLaMA-Factory resolves it (from the working directory, where it runs from its repository
    root), else beside the spec or one folder up (the spec sits in data/ and names data/x.json)."""
    for base in (Path.cwd(), spec_path.parent, spec_path.parent.parent):
        if (base / rel).exists():
            return base / rel
    return None


def load_v1_spec(spec_path: Path, problems: list[Problem], names: list[str] | None = None,
                 notes: list[str] | None = None) -> list[Conversation]:
    """LLaMA-Factory v1's data YAML (e.g. data/v1_sft_demo.yaml): each entry's local file read with its converter
    (alpaca, sharegpt; none: the v1 messages format); a hub entry says how to get it; `pair` is preference data."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        problems.append(Problem(spec_path.name, "reading a YAML spec needs PyYAML: pip install pyyaml"))
        return []
    try:
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problems.append(Problem(f"{spec_path.name}{line}", f"bad YAML: {getattr(e, 'problem', None) or e}"))
        return []
    if not isinstance(spec, dict):
        problems.append(Problem(spec_path.name, "expected a mapping of data set name -> path, source, converter"))
        return []
    if names:
        problems += [Problem(spec_path.name, f"no data set named {n!r}; it lists {', '.join(spec)}")
                     for n in names if n not in spec]
    out: list[Conversation] = []
    for name, entry in spec.items():
        if names and name not in names:
            continue
        where = f"{spec_path.name} [{name}]"
        if not isinstance(entry, dict) or not entry.get("path"):
            problems.append(Problem(where, "expected path, source and converter"))
            continue
        converter = entry.get("converter")
        if converter == "pair":
            problems.append(Problem(where, NOT_SFT["preference"]))
            continue
        source = entry.get("source", "hf_hub")
        if source != "local":
            problems.append(Problem(where, f"source {source} ({entry['path']}), not a local file: get it with "
                                           f"`huggingface-cli download --repo-type dataset {entry['path']} "
                                           f"--local-dir data/{name}`, then set path: data/{name} and source: local"))
            continue
        found = _find_v1_path(spec_path, str(entry["path"]))
        if found is None:
            problems.append(Problem(where, f"path {entry['path']!r} not found (looked from {Path.cwd()} and beside "
                                           f"{spec_path.name})"))
            continue
        if converter not in (None, "alpaca", "sharegpt", "openai"):
            problems.append(Problem(where, f"converter {converter!r} is not supported (alpaca, sharegpt, or none "
                                           "for v1 messages)"))
            continue
        fmt = converter or "openai"
        files = sorted(p for p in found.iterdir() if p.suffix in DATA_SUFFIXES) if found.is_dir() else [found]
        for f in files:
            out += load_file(f, fmt, problems, default_schema(fmt))
        if entry.get("size") and notes is not None:
            notes.append(f"{where}: size {entry['size']} is not applied; every record is read")
    return out


# ------------------------------------------------------------------------------------------------------------------
# placeholders ({{name}} in LLaMA-Factory's identity.json)


def fill_text(text: str, fill: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: fill.get(m.group(1), m.group(0)), text)


def fill_conversations(convs: list[Conversation], fill: dict[str, str]) -> None:
    for c in convs:
        for m in c.messages:
            m["content"] = fill_text(m["content"], fill)


def placeholder_problems(convs: list[Conversation]) -> list[Problem]:
    """One problem per file whose conversations still hold `{{name}}`-style placeholders: LLaMA-Factory's
    {{name}} and {{author}} anywhere, any other {{word}} when it is in at least half of the file's records (a
    template in a few code answers is content, not a placeholder)."""
    total: dict[str, int] = {}
    seen: dict[str, dict[str, int]] = {}
    for c in convs:
        file = c.source.split(":")[0]
        total[file] = total.get(file, 0) + 1
        for n in {n for m in c.messages for n in PLACEHOLDER.findall(m["content"])}:
            seen.setdefault(file, {})[n] = seen.get(file, {}).get(n, 0) + 1
    wanted = {f: {n for n, k in names.items() if n in ("name", "author") or 2 * k >= total[f]}
              for f, names in seen.items()}
    by_file: dict[str, dict] = {}
    for c in convs:
        found = {n for m in c.messages for n in PLACEHOLDER.findall(m["content"])} & wanted.get(
            c.source.split(":")[0], set())
        if found:
            f = by_file.setdefault(c.source.split(":")[0], {"names": {}, "records": 0, "first": c.source})
            f["records"] += 1
            for n in found:
                f["names"][n] = f["names"].get(n, 0) + 1
    out = []
    for file, f in by_file.items():
        names = sorted(f["names"], key=lambda n: (-f["names"][n], n != "name", n))
        shown = ", ".join("{{" + n + "}}" for n in names)
        sets = " ".join(f"--set identity_{n}=..." for n in names)
        fills = " ".join(f"--set {n}=..." for n in names)
        out.append(Problem(f["first"], f"{f['records']} records of {file} hold unfilled placeholders {shown}: the "
                                       f"model would learn them as they are; fill them with `tunedoc train ... {sets}` "
                                       f"or write a filled copy with `tunedoc data fill {file} {fills}`"))
    return out


def fill_file(path: str | os.PathLike, fill: dict[str, str], out: str | os.PathLike | None = None) -> tuple[Path, int]:
    """A copy of a JSON/JSONL data file with `{{name}}` placeholders replaced in every string (records, keys and
    layout kept); returns (written path, replacements). out: default FILE.filled.json beside it."""
    src = Path(path)
    text = src.read_text(encoding="utf-8-sig")
    count = 0

    def walk(v):
        nonlocal count
        if isinstance(v, str):
            new = fill_text(v, fill)
            count += len(PLACEHOLDER.findall(v)) - len(PLACEHOLDER.findall(new))
            return new
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    dst = Path(out) if out else src.with_name(f"{src.stem}.filled{src.suffix}")
    if text.lstrip().startswith("["):
        result = json.dumps(walk(json.loads(text)), indent=2, ensure_ascii=False) + "\n"
    else:
        result = "".join(json.dumps(walk(json.loads(line)), ensure_ascii=False) + "\n"
                         for line in text.splitlines() if line.strip())
    dst.write_text(result, encoding="utf-8")
    return dst, count


def write_jsonl(convs: list[Conversation], path: str | os.PathLike) -> Path:
    """Conversations as openai-format JSONL (tools, reasoning, tool calls and loss weights kept), the form a run
    reads when its data came from picked data sets or filled placeholders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for c in convs:
            rec: dict = {"messages": c.messages}
            if c.tools:
                rec["tools"] = c.tools
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def load_conversations(path: str | os.PathLike, fmt: str = "auto", datasets: list[str] | None = None,
                       fill: dict[str, str] | None = None, notes: list[str] | None = None) -> list[Conversation]:
    """Read and validate a data file (JSON array or JSONL), a directory with a LLaMA-Factory dataset_info.json,
    a dataset_info.json file, or a LLaMA-Factory v1 YAML spec. fmt: "auto" (detect per file) or one of FORMATS
    (ignored for dataset_info.json, whose entries say their own format). datasets: the entries to read (others
    are not checked). fill: placeholder values ({"name": "Tuna"} fills {{name}}); placeholders left unfilled are
    problems. notes: receives what was skipped and why. Raises FileNotFoundError for a missing path, DataError
    listing every problem at once."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}: use auto, {', '.join(FORMATS)}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data path {str(p)!r} does not exist")
    problems: list[Problem] = []
    is_dir = p.is_dir() or p.name == "dataset_info.json"
    if datasets and not (is_dir or p.suffix in (".yaml", ".yml")):
        raise DataError([Problem(str(p), "--dataset picks entries of a dataset_info.json or a v1 YAML spec: point "
                                         "--data at the folder that holds dataset_info.json")])
    if p.suffix in (".yaml", ".yml"):
        convs = load_v1_spec(p, problems, datasets, notes)
    elif is_dir:
        directory = p if p.is_dir() else p.parent
        if (directory / "dataset_info.json").exists():
            convs = load_dataset_dir(directory, problems, datasets, notes)
        else:
            if datasets:
                raise DataError([Problem(str(p), "--dataset needs a dataset_info.json in this folder")])
            files = sorted(f for f in p.iterdir() if f.suffix in DATA_SUFFIXES)
            if not files:
                raise DataError([Problem(str(p), "a directory without dataset_info.json and without .json/.jsonl "
                                                 "files: point --data at a data file")])
            convs = [c for f in files for c in load_file(f, fmt, problems)]
    else:
        convs = load_file(p, fmt, problems)
    if fill:
        fill_conversations(convs, fill)
    problems += placeholder_problems(convs)
    if problems:
        raise DataError(problems)
    return convs
