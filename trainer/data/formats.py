"""Reading and validating conversation data: alpaca, sharegpt and openai records, JSON arrays or JSONL, and
LLaMA-Factory data directories (dataset_info.json). No torch, no transformers: this runs before any model loads.

Every problem in the data is collected, then raised together as one DataError, so a user fixes a file in one go.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("alpaca", "sharegpt", "openai")
ROLES = ("system", "user", "assistant", "tool")
MAX_LISTED = 40  # problems printed before "... and N more"

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
            if p.get("type", "text") != "text" or not isinstance(p.get("text"), str):
                problems.append(Problem(where, f"{what}: only text parts are supported, found type "
                                               f"{p.get('type')!r}"))
                return None
            parts.append(p["text"])
        return "".join(parts)
    if not isinstance(value, str):
        problems.append(Problem(where, f"{what} is {type(value).__name__}, expected text"))
        return None
    return value


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
        if content is None and turn.get("tool_calls"):
            content = json.dumps(turn["tool_calls"], ensure_ascii=False)
        content = _text(content, where, f"{at}.{ctag}", problems)
        if content is None:
            continue
        msgs.append({"role": role, "content": content, "_at": at})
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
        if not m["content"].strip():
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
    return Conversation([{"role": m["role"], "content": m["content"]} for m in msgs], where, schema.format, tools)


def load_file(path: Path, fmt: str, problems: list[Problem], schema: Schema | None = None) -> list[Conversation]:
    records = read_records(path, problems)
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


def load_dataset_dir(directory: Path, problems: list[Problem], names: list[str] | None = None) -> list[Conversation]:
    """Every local data set listed in directory/dataset_info.json (or only `names`), read with its formatting,
    columns and tags."""
    info_path = directory / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        problems.append(Problem(f"dataset_info.json:{e.lineno}", f"bad JSON: {e.msg} at column {e.colno}"))
        return []
    if not isinstance(info, dict):
        problems.append(Problem("dataset_info.json", "expected an object of data set name -> description"))
        return []
    out: list[Conversation] = []
    for name, desc in info.items():
        if names and name not in names:
            continue
        where = f"dataset_info.json [{name}]"
        if not isinstance(desc, dict):
            problems.append(Problem(where, "expected an object with file_name, formatting, columns, tags"))
            continue
        hub = next((k for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
                    if desc.get(k)), None)
        if hub and not desc.get("file_name"):
            problems.append(Problem(where, f"{hub} data sets are not read here: download it and set file_name"))
            continue
        if desc.get("ranking"):
            problems.append(Problem(where, "a preference (ranking) data set: tunedoc trains supervised (SFT) data"))
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
        files = sorted(p for p in target.iterdir() if p.suffix in DATA_SUFFIXES) if target.is_dir() else [target]
        if not target.exists():
            problems.append(Problem(where, f"file_name {file_name!r} not found in {directory}"))
            continue
        base = default_schema(fmt)
        schema = Schema(fmt, {**base.columns, **(desc.get("columns") or {})}, {**base.tags, **(desc.get("tags") or {})})
        for f in files:
            out += load_file(f, fmt, problems, schema)
    return out


def load_conversations(path: str | os.PathLike, fmt: str = "auto") -> list[Conversation]:
    """Read and validate a data file (JSON array or JSONL), a directory with a LLaMA-Factory dataset_info.json,
    or a dataset_info.json file. fmt: "auto" (detect per file) or one of FORMATS (ignored for dataset_info.json,
    whose entries say their own format). Raises FileNotFoundError for a missing path, DataError listing every
    problem at once."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}: use auto, {', '.join(FORMATS)}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data path {str(p)!r} does not exist")
    problems: list[Problem] = []
    if p.is_dir() or p.name == "dataset_info.json":
        directory = p if p.is_dir() else p.parent
        if (directory / "dataset_info.json").exists():
            convs = load_dataset_dir(directory, problems)
        else:
            files = sorted(f for f in p.iterdir() if f.suffix in DATA_SUFFIXES)
            if not files:
                raise DataError([Problem(str(p), "a directory without dataset_info.json and without .json/.jsonl "
                                                 "files: point --data at a data file")])
            convs = [c for f in files for c in load_file(f, fmt, problems)]
    else:
        convs = load_file(p, fmt, problems)
    if problems:
        raise DataError(problems)
    return convs
