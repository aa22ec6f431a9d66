"""The data layer: formats and validation, chat-template tokenization with assistant-only labels, packing that
does not let attention cross samples, and `tunedoc data check`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.trainer import data as D

HERE = Path(__file__).parent / "data"

# The non-tool branch of Qwen2.5-Instruct's chat template (tokenizer_config.json), tool turns included.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant' "
    "and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Meta-Llama-3-8B-Instruct's chat template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def tunedoc(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def problems_of(path, fmt="auto") -> list[str]:
    with pytest.raises(D.DataError) as e:
        D.load_conversations(path, fmt)
    return [str(p) for p in e.value.problems]


# ---------------------------------------------------------------------------------------------------------------
# formats


def test_alpaca_system_history_and_input_become_turns():
    convs = D.load_conversations(HERE / "alpaca.json")
    assert [c.format for c in convs] == ["alpaca"] * 3
    assert convs[0].messages == [{"role": "user", "content": "Translate to French.\nGood morning"},
                                 {"role": "assistant", "content": "Bonjour"}]
    assert convs[1].messages[0] == {"role": "system", "content": "You are a careful calculator."}
    assert [m["content"] for m in convs[2].messages] == ["What is 2 + 2?", "4", "And times 3?", "12"]
    assert convs[2].source == "alpaca.json:4 (record 3)"


def test_sharegpt_roles_map_tool_calls_and_observations():
    convs = D.load_conversations(HERE / "sharegpt.jsonl")
    assert [m["role"] for m in convs[0].messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [m["role"] for m in convs[1].messages] == ["user", "assistant", "tool", "assistant"]


def test_openai_text_parts_are_joined_and_blank_lines_skipped():
    convs = D.load_conversations(HERE / "openai.jsonl")
    assert convs[1].source == "openai.jsonl:3"
    assert convs[1].messages[0]["content"] == "Say hi"


def test_llamafactory_directory_uses_its_columns_and_tags():
    convs = D.load_conversations(HERE / "llamafactory")
    assert convs[0].messages == [{"role": "system", "content": "Answer in two words."},
                                 {"role": "user", "content": "Who wrote Hamlet?"},
                                 {"role": "assistant", "content": "Shakespeare."}]
    assert convs[1].messages[1] == {"role": "assistant", "content": "Sorry! Let me check."}


def test_every_problem_in_a_jsonl_file_is_listed_with_its_line():
    found = problems_of(HERE / "bad.jsonl")
    assert [p.split(":")[1] for p in found] == ["2", "3", "4", "5", "6", "7", "8"]
    text = "\n".join(found)
    assert "bad.jsonl:2: bad JSON" in text
    assert "unknown role 'bot'" in text
    assert "two user turns in a row" in text
    assert "does not end with an assistant turn" in text
    assert "empty user text" in text
    assert "missing field 'messages'" in text and "sharegpt" in text
    assert "expected a JSON object" in text


def test_json_array_problems_name_the_record_and_its_line():
    found = problems_of(HERE / "bad_records.json")
    assert found[0].startswith("bad_records.json:3 (record 2): missing field 'output'")
    assert "record 3" in found[1] and "empty" in found[1]
    assert "record 4" in found[2] and "int" in found[2]


def test_broken_json_array_points_at_the_position():
    (msg,) = problems_of(HERE / "broken_array.json")
    assert msg.startswith("broken_array.json:4: bad JSON") and "trailing comma" in msg


def test_problems_are_deduplicated_and_capped(tmp_path):
    bad = tmp_path / "many.jsonl"
    bad.write_text("{nope\n" * 100)
    with pytest.raises(D.DataError) as e:
        D.load_conversations(bad)
    assert len(e.value.problems) == 100
    text = str(e.value)
    assert "100 problems" in text and f"... and {100 - D.formats.MAX_LISTED} more" in text
    assert len(text.splitlines()) == D.formats.MAX_LISTED + 2
    dup = D.DataError([D.Problem("a:1", "x"), D.Problem("a:1", "x"), D.Problem("a:2", "x")])
    assert len(dup.problems) == 2


def test_forced_format_reports_records_of_another_format(tmp_path):
    found = problems_of(HERE / "openai.jsonl", "alpaca")
    assert all("missing field 'output'" in p or "missing field 'instruction'" in p for p in found)


def test_missing_path_and_unknown_format():
    with pytest.raises(FileNotFoundError):
        D.load_conversations(HERE / "nope.jsonl")
    with pytest.raises(ValueError, match="unknown data format"):
        D.load_conversations(HERE / "openai.jsonl", "chatml")


def test_undetectable_format_says_what_it_found(tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n')
    (msg,) = problems_of(f)
    assert "cannot tell the format" in msg and "completion" in msg and "--format" in msg


# ---------------------------------------------------------------------------------------------------------------
# tokenization


def supervised_text(sample, tok) -> list[str]:
    """The decoded runs of labelled tokens."""
    runs, cur = [], []
    for i, l in zip(sample["input_ids"], sample["labels"]):
        if l != D.IGNORE:
            assert l == i
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


MULTI = D.Conversation([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am Tuna, made by tunedoc."},
])


def test_labels_cover_exactly_the_assistant_text_and_eos(tiny_tokenizer):
    s = D.tokenize(MULTI, tiny_tokenizer, 512)
    assert supervised_text(s, tiny_tokenizer) == ["Hello! How can I help?<|im_end|>",
                                                  "I am Tuna, made by tunedoc.<|im_end|>"]
    assert len(s["input_ids"]) == len(s["labels"]) == s["length"]


@pytest.fixture
def template_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    def make(template, specials=(), bos=None, eos=None):
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        tok.add_tokens(list(specials), special_tokens=True)
        if bos:
            tok.bos_token = bos
        if eos:
            tok.eos_token = eos
        tok.chat_template = template
        return tok
    return make


def test_qwen25_template_default_system_and_tool_turns(template_tokenizer):
    tok = template_tokenizer(QWEN25_TEMPLATE)
    conv = D.load_conversations(HERE / "sharegpt.jsonl")[1]  # user, tool call, tool answer, assistant
    s = D.tokenize(conv, tok, 512)
    assert tok.decode(s["input_ids"]).startswith("<|im_start|>system\nYou are Qwen")
    assert supervised_text(s, tok) == ['{"name": "weather", "arguments": {"city": "Paris"}}<|im_end|>',
                                       "It is 21 degrees in Paris.<|im_end|>"]


def test_llama3_template_with_bos_and_eot(template_tokenizer):
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = template_tokenizer(LLAMA3_TEMPLATE, specials, bos="<|begin_of_text|>", eos="<|eot_id|>")
    s = D.tokenize(MULTI, tok, 512)
    assert s["input_ids"][0] == tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert s["input_ids"].count(tok.bos_token_id) == 1
    assert supervised_text(s, tok) == ["Hello! How can I help?<|eot_id|>", "I am Tuna, made by tunedoc.<|eot_id|>"]


def test_truncation_keeps_the_start_and_reports_the_full_length(tiny_tokenizer):
    full = D.tokenize(MULTI, tiny_tokenizer, 512)
    cut = D.tokenize(MULTI, tiny_tokenizer, 20)
    assert len(cut["input_ids"]) == 20 and cut["length"] == full["length"] > 20
    assert cut["input_ids"] == full["input_ids"][:20] and cut["labels"] == full["labels"][:20]
    st = D.stats(D.build_samples([MULTI], tiny_tokenizer, 20), 20)
    assert st["truncated"] == 1


def test_no_chat_template_is_a_clear_error(template_tokenizer):
    tok = template_tokenizer(None)
    with pytest.raises(D.TemplateError, match="chat template"):
        D.tokenize(MULTI, tok, 64)


# ---------------------------------------------------------------------------------------------------------------
# packing


def test_pack_fills_rows_and_keeps_every_sample_once():
    samples = [{"input_ids": [i] * n, "labels": [i] * n} for i, n in enumerate([5, 3, 7, 2, 8, 1, 4], 1)]
    rows = D.pack(samples, 10)
    assert len(rows) == 3  # 30 tokens in rows of 10: the best possible
    assert all(len(r["input_ids"]) <= 10 for r in rows)
    assert sorted(t for r in rows for t in r["input_ids"]) == sorted(t for s in samples for t in s["input_ids"])
    for r in rows:  # position_ids restart at 0 where a new sample starts
        starts = [k for k, p in enumerate(r["position_ids"]) if p == 0]
        assert all(r["input_ids"][k] != r["input_ids"][k - 1] for k in starts[1:])
    with pytest.raises(ValueError, match="cutoff_len"):
        D.pack([{"input_ids": [1] * 11, "labels": [1] * 11}], 10)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_a_packed_row_computes_the_same_logits_as_its_samples_alone(attn, tiny_model_dir, tiny_tokenizer):
    """The proof that packing does not let attention cross sample boundaries."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=attn).eval()
    convs = D.load_conversations(HERE / "sharegpt.jsonl") + D.load_conversations(HERE / "openai.jsonl")
    samples = D.build_samples(convs, tiny_tokenizer, 256)
    rows = D.pack(samples, 256)
    assert len(rows) < len(samples)
    batch = D.collate(rows, tiny_tokenizer.pad_token_id, packing=True)
    assert "attention_mask" not in batch
    labels = batch.pop("labels")
    with torch.no_grad():
        # training runs with use_cache=False (the recipe sets it): transformers only reads packing from
        # position_ids when there is no KV cache
        packed = model(**batch, use_cache=False).logits
        leaky = model(**batch, use_cache=True).logits  # the trap: samples attend to each other
    assert not torch.allclose(leaky, packed, atol=1e-3)
    with torch.no_grad():
        alone = {tuple(s["input_ids"]): model(input_ids=torch.tensor([s["input_ids"]])).logits[0] for s in samples}
    checked = 0
    for r, row in enumerate(rows):
        pos = row["position_ids"] + [0]
        start = 0
        for k in range(1, len(pos)):
            if pos[k] == 0:  # sample [start, k)
                ref = alone[tuple(row["input_ids"][start:k])]
                torch.testing.assert_close(packed[r, start:k], ref, atol=1e-5, rtol=1e-4)
                checked += 1
                start = k
    assert checked == len(samples)
    # padding in the batch is never learned from
    assert (labels[batch["input_ids"] == tiny_tokenizer.pad_token_id] == D.IGNORE).all()


def test_unpacked_collate_pads_with_a_mask():
    b = D.collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], 0, False)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]


def test_stats_padding_waste_vs_packing():
    st = D.length_stats([10, 10, 20, 40], 40)
    assert st["samples"] == 4 and st["tokens"] == 80 and st["truncated"] == 0
    assert st["padding"]["pad_to_cutoff"] == {"rows": 4, "waste": 0.5}
    assert st["padding"]["packing"] == {"rows": 2, "waste": 0.0}
    assert sum(b["count"] for b in st["histogram"]) == 4


# ---------------------------------------------------------------------------------------------------------------
# tunedoc data check


def test_data_check_lists_every_problem_and_exits_1():
    out = tunedoc("data", "check", HERE / "bad.jsonl")
    assert out.returncode == 1, out.stderr
    for line in ("bad.jsonl:2", "bad.jsonl:3", "bad.jsonl:4", "bad.jsonl:5", "bad.jsonl:6", "bad.jsonl:7",
                 "bad.jsonl:8"):
        assert line in out.stdout
    assert "bad.jsonl:1" not in out.stdout and "bad.jsonl:9" not in out.stdout


def test_data_check_json_with_the_models_tokenizer(tiny_model_dir, identity_jsonl, tiny_tokenizer):
    out = tunedoc("data", "check", identity_jsonl, "--model", tiny_model_dir, "--cutoff-len", "24", "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    convs = D.load_conversations(identity_jsonl)
    samples = D.build_samples(convs, tiny_tokenizer, 24)
    assert rep["ok"] and rep["conversations"] == len(convs) and rep["formats"] == {"openai": len(convs)}
    assert rep["roles"] == {"user": len(convs), "assistant": len(convs)}
    st = rep["lengths"]
    assert st["unit"] == "tokens" and st["max"] == max(s["length"] for s in samples)
    assert st["truncated"] == sum(s["length"] > 24 for s in samples) > 0
    assert sum(b["count"] for b in st["histogram"]) == len(convs)
    roomy = json.loads(tunedoc("data", "check", identity_jsonl, "--model", tiny_model_dir, "--cutoff-len", "256",
                               "--json").stdout)["lengths"]
    assert roomy["truncated"] == 0
    assert roomy["padding"]["packing"]["waste"] < 0.1 < 0.5 < roomy["padding"]["pad_to_cutoff"]["waste"]
    assert roomy["padding"]["packing"]["rows"] == len(D.pack(D.build_samples(convs, tiny_tokenizer, 256), 256))


def test_data_check_without_a_model_estimates_and_says_so():
    out = tunedoc("data", "check", HERE / "llamafactory", "--cutoff-len", "8")
    assert out.returncode == 0, out.stderr
    assert "2 conversations" in out.stdout and "estimated tokens" in out.stdout and "--model" in out.stdout
    assert "2 of 2 samples are longer than cutoff_len 8" in out.stdout
    rep = json.loads(tunedoc("data", "check", HERE / "llamafactory", "--json").stdout)
    assert rep["lengths"]["tokenizer"] is None and rep["formats"] == {"alpaca": 1, "sharegpt": 1}


def test_data_check_bad_arguments_exit_2_with_the_fix(tmp_path):
    missing = tunedoc("data", "check", tmp_path / "nope.jsonl")
    assert missing.returncode == 2 and "does not exist" in missing.stderr and not missing.stdout
    no_model = tunedoc("data", "check", HERE / "openai.jsonl", "--model", tmp_path / "no-model")
    assert no_model.returncode == 2 and "does not exist" in no_model.stderr


def test_data_check_imports_no_torch():
    code = ("import sys; from tunedoc.cli import main; rc = main(['data', 'check', sys.argv[1], '--json']); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(HERE / "alpaca.json")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr


def test_tool_descriptions_reach_the_template_and_bad_ones_are_reported(tmp_path, template_tokenizer):
    f = tmp_path / "tools.jsonl"
    tools = [{"name": "weather", "parameters": {"city": "string"}}]
    turns = [{"from": "human", "value": "Weather?"}, {"from": "gpt", "value": "Sunny."}]
    f.write_text(json.dumps({"conversations": turns, "tools": json.dumps(tools)}) + "\n"
                 + json.dumps({"conversations": turns, "tools": "[{oops"}) + "\n")
    (msg,) = problems_of(f)
    assert msg.startswith("tools.jsonl:2: 'tools' is not valid JSON")
    f.write_text(json.dumps({"conversations": turns, "tools": json.dumps(tools)}) + "\n")
    (conv,) = D.load_conversations(f)
    assert conv.tools == tools
    from tunedoc.trainer.tiny import CHAT_TEMPLATE

    tok = template_tokenizer("{%- if tools %}{{- '<|im_start|>system\\nTools: ' + (tools | tojson) + '<|im_end|>\\n' }}"
                             "{%- endif %}" + CHAT_TEMPLATE)
    s = D.tokenize(conv, tok, 512)
    assert '"weather"' in tok.decode(s["input_ids"])
    assert supervised_text(s, tok) == ["Sunny.<|im_end|>"]
