import statistics
from pathlib import Path

import pytest
from profile_configs import CONFIGS, load

from tunedoc.profiles.estimate import Stack, estimate
from tunedoc.profiles.measured import compare, load_rows, table
from tunedoc.profiles.profile import Profile


def test_estimate_matches_published_measured_peaks():
    rows = compare(CONFIGS)
    print("\n" + table(rows))
    errors = [abs(r.error) for r in rows]
    assert len(rows) >= 10
    assert statistics.median(errors) <= 0.10
    assert max(errors) <= 0.25, table(rows)


def test_every_measured_row_has_a_source_unit_and_kind():
    for row in load_rows():
        assert row["source"].startswith("http"), row["id"]
        assert row["unit"] in ("GiB", "GB") and row["kind"] in ("allocated", "reserved", "device")
        assert (CONFIGS / f"{row['model']}.json").exists()


def est(name="llama-3.1-8b", **fields):
    return estimate(load(name), Profile(**fields), corrections=False)


def test_breakdown_sums_to_total_and_kinds_nest():
    e = est()
    assert sum(e.breakdown.values()) == pytest.approx(e.total_gb)
    assert e.unit == "GiB" and e.kind == "reserved"
    assert e.figure("allocated") < e.figure("reserved") < e.figure("device") == e.total_gb
    assert any("fp32" in a for a in e.assumptions)


def test_fewer_bits_less_memory_and_double_quant_saves_constants():
    totals = [est(quant=q).total_gb for q in ("nf4-dq", "nf4", "int8", "none")]
    assert totals == sorted(totals)
    nf4, dq = est(quant="nf4").breakdown, est(quant="nf4-dq").breakdown
    # 4 bytes per 64 weights vs 1 byte per 64 + 4 bytes per 64*256: 0.5 vs ~0.127 bits per weight
    assert nf4["quant_constants"] / dq["quant_constants"] == pytest.approx(4 / (1 + 4 / 256), rel=1e-6)
    # 4-bit weights of Llama-3.1-8B's 6.98 B linear params: 3.25 GiB
    assert dq["quantized_weights"] == pytest.approx(6.979e9 * 0.5 / 2**30, rel=0.01)


def test_checkpointing_and_sequence_drive_activations():
    on, off = est(grad_ckpt=True, cutoff_len=2048), est(grad_ckpt=False, cutoff_len=2048)
    assert off.breakdown["activations"] > 10 * on.breakdown["activations"]
    short, long_ = est(cutoff_len=1024, loss_impl="plain"), est(cutoff_len=4096, loss_impl="plain")
    assert long_.breakdown["logits_loss"] == pytest.approx(4 * short.breakdown["logits_loss"])


def test_offload_leaves_one_layer_input_on_the_gpu_and_says_what_it_costs():
    on, off = est(grad_ckpt="on", cutoff_len=4096), est(grad_ckpt="offload", cutoff_len=4096)
    tokens, hidden, layers = 4096, 4096, 32
    layer_input = tokens * hidden * 2 / 2**30  # bf16
    assert on.breakdown["activations"] - off.breakdown["activations"] == pytest.approx((layers - 1) * layer_input)
    note = next(a for a in off.assumptions if "offload" in a)
    assert "pinned CPU RAM" in note and "slower" in note and f"{layers * layer_input:.2f} GiB" in note
    assert not any("offload" in a for a in on.assumptions)


def test_the_chunked_loss_drops_the_full_logits_from_the_peak():
    plain, chunked = est(cutoff_len=4096, loss_impl="plain"), est(cutoff_len=4096, loss_impl="chunked")
    # 4096 tokens x 128k vocabulary x 12 bytes of fp32 logits, their log-softmax and gradient
    assert plain.breakdown["logits_loss"] == pytest.approx(4096 * 128256 * 12 / 2**30, rel=0.01)
    assert "logits_loss" not in chunked.breakdown  # one layer's backward is the larger transient now
    assert plain.total_gb - chunked.total_gb > 4
    assert any("never held" in a for a in chunked.assumptions)
    assert est(loss_impl="auto").total_gb == est(loss_impl="fused").total_gb == est(loss_impl="chunked").total_gb
    # a short sequence with a huge vocabulary: the chunk is the loss peak, and it does not grow with the tokens
    big = [estimate(load("gemma-2-9b"), Profile(cutoff_len=n, lora_targets=["q_proj"]), corrections=False)
           for n in (256, 512)]
    assert big[1].breakdown["logits_loss"] < 1.5 * big[0].breakdown["logits_loss"]


def test_a_measured_row_without_a_stack_is_the_full_logits_loss():
    from tunedoc.profiles.measured import MEASURED_STACK

    assert MEASURED_STACK == {"loss": "hf", "offload_activations": False}


def test_eager_attention_adds_a_quadratic_term():
    p = Profile(grad_ckpt=False, cutoff_len=4096)
    sdpa = estimate(load("llama-2-7b"), p, attn="sdpa", corrections=False).breakdown["activations"]
    eager = estimate(load("llama-2-7b"), p, attn="eager", corrections=False).breakdown["activations"]
    p2 = Profile(grad_ckpt=False, cutoff_len=8192)
    sdpa2 = estimate(load("llama-2-7b"), p2, attn="sdpa", corrections=False).breakdown["activations"]
    eager2 = estimate(load("llama-2-7b"), p2, attn="eager", corrections=False).breakdown["activations"]
    assert sdpa2 / sdpa == pytest.approx(2, rel=0.01)
    assert (eager2 - sdpa2) / (eager - sdpa) == pytest.approx(4, rel=0.05)


def test_optimizer_and_rank_scale_adapter_memory():
    a, b = est(optimizer="adamw"), est(optimizer="adamw-8bit")
    assert a.breakdown["optimizer_states"] == pytest.approx(4 * b.breakdown["optimizer_states"])
    assert est(lora_r=64).breakdown["lora_params"] == pytest.approx(4 * est(lora_r=16).breakdown["lora_params"])
    few = est(lora_targets=["q_proj", "v_proj"]).breakdown["lora_params"]
    assert few < est().breakdown["lora_params"] / 5


def test_large_vocabulary_makes_the_fp32_loss_dominate_long_sequences():
    e = est(name="gemma-2-9b", cutoff_len=4096, loss_impl="plain")
    assert max(e.breakdown, key=e.breakdown.get) == "logits_loss"
    assert any("softcapping" in a for a in e.assumptions)
    assert estimate(load("llama-3.1-8b"), Profile(cutoff_len=4096), stack=Stack(loss="chunked"),
                    corrections=False).total_gb < est(cutoff_len=4096, loss_impl="plain").total_gb - 4


def test_moe_experts_stay_16_bit_under_bitsandbytes_unless_told():
    stock = est(name="mixtral-8x7b")
    assert stock.breakdown["weights_16bit"] > 80  # 45 B expert weights in bf16, upcast to fp32
    assert any("3-D tensors" in a for a in stock.assumptions)
    quantized = estimate(load("mixtral-8x7b"), Profile(), stack=Stack(experts_quantized=True), corrections=False)
    assert quantized.total_gb < 35


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="attn"):
        estimate(load("llama-2-7b"), Profile(), attn="xformers")
    with pytest.raises(ValueError, match="match no linear layer.*q_proj"):
        estimate(load("llama-2-7b"), Profile(lora_targets=["query_key_value"]))
