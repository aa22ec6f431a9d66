import tomllib

import pytest

from tunedoc.profiles.profile import BUILTIN_DIR, Profile, builtin_names, load_profile

REQUIRED = {"qlora-min", "qlora-balanced", "qlora-long", "lora-8bit", "lora-16bit"}


def test_the_required_profiles_exist():
    assert REQUIRED <= set(builtin_names())


@pytest.mark.parametrize("name", builtin_names())
def test_each_file_validates_and_explains_itself(name):
    path = BUILTIN_DIR / f"{name}.toml"
    data = tomllib.loads(path.read_text())
    prof = Profile.from_dict({"name": name, **data})  # raises ProfileError listing every problem
    assert prof.description
    assert load_profile(name) == prof
    text = path.read_text().splitlines()
    assert text[0].startswith(f"# {name}:")
    # the memory-relevant fields each carry a comment saying what they do
    for key in ("quant", "lora_r", "cutoff_len", "micro_batch", "grad_ckpt", "loss_impl", "optimizer"):
        line = next(l for l in text if l.startswith(f"{key} ") or l.startswith(f"{key}="))
        assert "#" in line, f"{name}: {key} has no comment"


def test_qlora_min_is_the_minimal_memory_setup():
    p = load_profile("qlora-min")
    assert (p.quant, p.lora_r, p.grad_ckpt, p.optimizer) == ("nf4-dq", 8, "offload", "paged-adamw-8bit")
    assert p.loss_impl in ("auto", "chunked")
    assert load_profile("qlora-long").cutoff_len >= 4096


@pytest.mark.parametrize("text, where", [
    ("lora_r = 8\nlr 1e-4\n", ":2:4: TOML syntax error: Expected '='"),
    ("lora_r = 8\nlora_targets = [\"q_proj\",\n", ":3:1: TOML syntax error"),  # the file ends inside a list
])
def test_a_toml_syntax_error_names_file_line_and_column(tmp_path, text, where):
    from tunedoc.profiles.profile import ProfileError

    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert f"{path}{where}" in str(e.value)


def test_a_missing_profile_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_profile(tmp_path / "nope.toml")


def test_old_checkpointing_values_still_load(tmp_path):
    """Profile files and saved runs from before grad_ckpt = off|on|offload: true/false, gradient_checkpointing."""
    old = tmp_path / "old.toml"
    old.write_text("grad_ckpt = false\n")
    assert load_profile(old).grad_ckpt == "off"
    old.write_text("gradient_checkpointing = true\n")
    assert load_profile(old).grad_ckpt == "on"
    assert Profile.from_dict({"grad_ckpt": True}).grad_ckpt == "on"
    assert Profile().with_overrides(["grad_ckpt=false"]).grad_ckpt == "off"
    assert Profile(grad_ckpt=False).checkpointing is False


def test_bad_checkpointing_and_loss_values_name_the_choices():
    from tunedoc.profiles.profile import ProfileError

    with pytest.raises(ProfileError) as e:
        Profile().with_overrides(["grad_ckpt=sometimes", "loss_impl=fast"])
    assert "off, on, offload" in str(e.value) and "auto, chunked, fused, plain" in str(e.value)
