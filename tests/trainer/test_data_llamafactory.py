"""LLaMA-Factory's data as its users have it (tests/trainer/fixtures/llamafactory: its own data/ files, cut short):
data sets picked by name, the v1 format, one sentence for data that is not SFT, and {{name}} placeholders."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.trainer import data as D
from tunedoc.trainer.data.formats import fill_file, write_jsonl

LF = Path(__file__).parent / "fixtures" / "llamafactory"
DATA = LF / "data"
FILL = {"name": "Tuna", "author": "ACME Labs"}


def tunedoc(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**__import__("os").environ,
                                                         "PYTHONPATH": str(Path(__file__).parents[2])})


def problems(*args, **kw) -> list[D.Problem]:
    with pytest.raises(D.DataError) as e:
        D.load_conversations(*args, **kw)
    return e.value.problems


def test_picked_data_sets_only_are_read_and_placeholders_are_one_problem():
    # the folder holds 104 entries, 90 of them on a hub; picking two reads two and checks nothing else
    probs = problems(DATA, datasets=["identity", "alpaca_en_demo"])
    assert len(probs) == 1
    assert probs[0].where.startswith("identity.json:")
    assert "{{name}}" in probs[0].message and "{{author}}" in probs[0].message
    assert "--set identity_name=" in probs[0].message and "tunedoc data fill" in probs[0].message
    convs = D.load_conversations(DATA, datasets=["identity", "alpaca_en_demo"], fill=FILL)
    identity = json.loads((DATA / "identity.json").read_text(encoding="utf-8"))
    assert len(convs) == len(identity) + 5
    assert convs[0].messages[-1]["content"] == identity[0]["output"].replace("{{name}}", "Tuna").replace(
        "{{author}}", "ACME Labs")
    assert not any("{{" in m["content"] for c in convs for m in c.messages)


def test_without_dataset_the_hub_and_non_sft_entries_are_notes_not_422_problems(tmp_path):
    notes: list[str] = []
    probs = problems(DATA, notes=notes)
    # only the two demo files cut from the fixture and identity's placeholders, not a problem per hub entry
    assert len(probs) == 3, probs
    assert any("90 data sets on a hub" in n for n in notes)
    assert any("preference data (dpo_en_demo, dpo_zh_demo)" in n for n in notes)
    assert any("--dataset NAME" in n for n in notes)


def test_a_picked_hub_entry_says_how_to_get_it_and_a_wrong_name_lists_the_local_ones():
    probs = problems(DATA, datasets=["alpaca_en", "identiti"])
    text = "\n".join(map(str, probs))
    assert "huggingface-cli download --repo-type dataset llamafactory/alpaca_en" in text
    assert "modelscope download --dataset llamafactory/alpaca_en" in text
    assert "no data set named 'identiti'" in text and "identity, alpaca_en_demo" in text


@pytest.mark.parametrize("name,kind", [("dpo_en_demo", "preference data"), ("kto_en_demo", "KTO data"),
                                       ("c4_demo", "pretraining text"), ("wiki_demo", "pretraining text"),
                                       ("mllm_demo", "multimodal")])
def test_non_sft_entries_get_one_sentence(name, kind):
    probs = problems(DATA, datasets=[name])
    assert len(probs) == 1 and probs[0].message.startswith(kind)


@pytest.mark.parametrize("file,kind", [("dpo_en_demo.json", "preference"), ("kto_en_demo.json", "KTO"),
                                       ("c4_demo.jsonl", "pretraining"), ("v1_dpo_demo.jsonl", "preference")])
def test_non_sft_files_read_directly_get_one_sentence_not_one_per_record(file, kind):
    probs = problems(DATA / file)
    assert len(probs) == 1 and probs[0].message.startswith(kind), probs


def test_v1_parts_loss_weight_reasoning_and_tool_calls():
    convs = D.load_conversations(DATA / "v1_sft_demo.jsonl", fill=FILL)
    assert len(convs) == 20
    assert convs[0].messages == [{"role": "user", "content": "hi"}, {
        "role": "assistant", "content": "Hello! I am Tuna, an AI assistant developed by ACME Labs. How can I assist "
                                        "you today?"}]
    convs = D.load_conversations(DATA / "reason_tool_use_demo_50.jsonl")
    assert len(convs) == 4
    call = convs[1].messages[2]
    assert call["role"] == "assistant" and call["content"] == "" and call["reasoning_content"]
    assert call["tool_calls"][0]["function"] == {"name": "get_movie_details", "arguments": {"title": "Inception"}}
    assert isinstance(convs[1].tools, list) and convs[1].tools[0]["function"]["name"]


def test_an_assistant_turn_with_loss_weight_zero_is_context(tmp_path):
    f = tmp_path / "v1.jsonl"
    msgs = [{"role": "user", "content": [{"type": "text", "value": "q1"}], "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "text", "value": "shown"}], "loss_weight": 0.0},
            {"role": "user", "content": [{"type": "text", "value": "q2"}]},
            {"role": "assistant", "content": [{"type": "text", "value": "learned"}], "loss_weight": 1.0}]
    f.write_text(json.dumps({"messages": msgs}) + "\n")
    conv = D.load_conversations(f)[0]
    assert conv.messages[1]["loss_weight"] == 0.0 and "loss_weight" not in conv.messages[3]

    class Tok:  # a character tokenizer with a plain template: enough to see which characters are trained
        def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False):
            return "".join(f"<{m['role']}>{m['content']}</s>" for m in messages) + ("<assistant>" if
                                                                                    add_generation_prompt else "")

        def __call__(self, text, add_special_tokens=False, return_offsets_mapping=True):
            return {"input_ids": [ord(c) for c in text], "offset_mapping": [(i, i + 1) for i in range(len(text))]}

    s = D.tokenize(conv, Tok(), 1000)
    trained = "".join(chr(t) for t in s["labels"] if t != D.IGNORE)
    assert trained == "learned</s>"


def test_the_v1_yaml_spec_reads_local_entries_and_names_the_rest(monkeypatch):
    monkeypatch.chdir(LF)  # LLaMA-Factory resolves data/identity.json from its repository root
    notes: list[str] = []
    convs = D.load_conversations(DATA / "v1_sft_demo.yaml", fill=FILL, notes=notes)
    assert len(convs) == 91 + 5
    assert any("size 500" in n for n in notes)
    convs = D.load_conversations(DATA / "v1_sft_demo.yaml", datasets=["alpaca_en_demo"])
    assert len(convs) == 5
    probs = problems(DATA / "v1_dpo_demo.yaml")
    assert len(probs) == 1 and "preference" in probs[0].message


def test_materialized_jsonl_reads_back_the_same(tmp_path):
    convs = D.load_conversations(DATA / "reason_tool_use_demo_50.jsonl")
    again = D.load_conversations(write_jsonl(convs, tmp_path / "x.jsonl"))
    assert [c.messages for c in again] == [c.messages for c in convs]
    assert [c.tools for c in again] == [c.tools for c in convs]


def test_data_check_and_fill_cli(tmp_path):
    r = tunedoc("data", "check", DATA, "--dataset", "identity,alpaca_en_demo")
    assert r.returncode == 1 and "unfilled placeholders {{name}}, {{author}}" in r.stdout
    assert "hf_hub_url" not in r.stdout
    r = tunedoc("data", "check", DATA, "--dataset", "identity,alpaca_en_demo", "--set", "identity_name=Tuna",
                "--set", "identity_author=ACME", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["conversations"] == 96
    r = tunedoc("data", "check", DATA)
    assert "note: not read: 90 data sets on a hub" in r.stdout and "dataset_info.json [alpaca_zh_demo]" in r.stdout
    out = tmp_path / "identity.json"
    r = tunedoc("data", "fill", DATA / "identity.json", "--set", "name=Tuna", "--set", "author=ACME", "--out", out)
    assert r.returncode == 0 and r.stdout.strip() == str(out)
    filled = json.loads(out.read_text(encoding="utf-8"))
    original = json.loads((DATA / "identity.json").read_text(encoding="utf-8"))
    assert len(filled) == len(original) and filled[3]["instruction"] == original[3]["instruction"]
    assert filled[3]["output"] == "You may refer to me as Tuna, an AI assistant developed by ACME."
    assert D.load_conversations(out)  # no problem left


def test_fill_file_keeps_jsonl(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"messages": [{"role": "user", "content": "who?"},
                                            {"role": "assistant", "content": "{{name}}"}]}) + "\n")
    dst, n = fill_file(src, {"name": "Tuna"})
    assert n == 1 and dst.name == "a.filled.jsonl"
    assert json.loads(dst.read_text())["messages"][1]["content"] == "Tuna"


def test_a_template_in_a_few_answers_is_not_a_placeholder(tmp_path):
    recs = [{"instruction": f"q{i}", "output": "a" if i else "use {{title}} in the Vue template"} for i in range(6)]
    (tmp_path / "a.json").write_text(json.dumps(recs))
    assert len(D.load_conversations(tmp_path / "a.json")) == 6
