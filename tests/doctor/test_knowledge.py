"""The doctor's knowledge tables: sourced, consistent, and the lookups others rely on (lookup_gpu for --gpu)."""

from __future__ import annotations

import re

import pytest

from tunedoc.doctor import knowledge as K

TABLES = ("gpus", "families", "cuda", "torch", "bnb")


def _rows(obj, path=""):
    """Every table row (a dict with data) in a loaded TOML document, with where it is."""
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            yield from _rows(x, f"{path}[{i}]")
    elif isinstance(obj, dict):
        if any(not isinstance(v, (dict, list)) for v in obj.values()):
            yield path, obj  # a row; its nested tables (torch `variants`) are part of it
            return
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from _rows(v, f"{path}.{k}")


@pytest.mark.parametrize("table", TABLES)
def test_every_row_has_a_source(table):
    doc = K.load(table)
    missing = []
    for where, row in _rows(doc):
        if where.startswith(".arch"):
            continue  # arch lists are plain lists, sourced by the release rows that name them
        if "source" not in row or not str(row["source"]).strip():
            missing.append(where)
    assert not missing, f"{table}.toml rows without a source: {missing}"


def test_cuda_to_driver_is_monotone():
    rows = K.load("cuda")["cuda"]
    versions = [K.vkey(r["version"]) for r in rows]
    assert versions == sorted(versions), "cuda rows must be in version order"
    for col in ("linux", "windows"):
        drivers = [K.vkey(r[col]) for r in rows]
        assert drivers == sorted(drivers), f"{col}: a newer CUDA needs an older driver somewhere: {drivers}"


def test_min_driver():
    assert K.min_driver("12.8", "Linux") == "570.86.10"
    assert K.min_driver("12.8.1", "Linux") == "570.86.10"
    assert K.min_driver("12.8", "Windows") == "571.96"
    assert K.min_driver("11.8", "Linux") == "520.61.05"
    assert K.min_driver("9.9", "Linux") is None
    assert K.family_min_driver("12.4") == "525.60.13"
    assert K.driver_max_cuda("550.54.15") == "12.4"
    assert K.driver_max_cuda("570.86.10") == "12.8"


ARCH_RE = re.compile(r"^(sm|compute)_\d{2,3}[a-z]?$")


def test_every_torch_variant_arch_list_parses():
    torch = K.load("torch")
    for rel in torch["release"]:
        assert rel["latest"].startswith(rel["version"] + "."), rel
        for variant, key in rel["variants"].items():
            assert re.fullmatch(r"cu1[1-3]\d", variant), variant
            assert key in torch["arch"], f"torch {rel['version']} {variant}: unknown arch list {key!r}"
            for system in ("Linux", "Windows"):
                arch = K.torch_arch_list(rel["version"], variant, system)
                assert arch, (rel["version"], variant, system)
                assert all(ARCH_RE.match(a) for a in arch), arch


def test_torch_variants_and_arch_lists():
    assert K.torch_variants("2.7.1") == ["cu118", "cu126", "cu128"]
    assert K.torch_variants("2.7.1+cu128") == ["cu118", "cu126", "cu128"]
    assert "cu121" not in K.torch_variants("2.6.0")
    assert K.torch_variants("1.0.0") == []
    assert K.torch_arch_list("2.7.1", "cu128") == ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert "sm_120" not in K.torch_arch_list("2.5.1", "cu124")
    assert "sm_61" not in K.torch_arch_list("2.8.0", "cu128")  # Pascal dropped from cu128 in 2.8
    assert "sm_70" not in K.torch_arch_list("2.11.0", "cu128")  # Volta dropped from cu128 in 2.11
    assert "sm_61" in K.torch_arch_list("2.5.1", "cu124", "Windows")
    assert K.torch_arch_list("2.6.0", "cu121") is None


def test_every_gpu_cc_is_in_the_family_table():
    ccs = {r["cc"] for r in K.load("families")["cc"]}
    for row in K.load("gpus")["gpu"]:
        assert row["cc"] in ccs, f"{row['name']}: compute capability {row['cc']} has no family row"
        assert row["vram_gb"] > 0, row


REQUIRED = [
    # GeForce 10/16/20/30/40/50
    "GTX 1060", "GTX 1070", "GTX 1080", "GTX 1080 Ti", "GTX 1650", "GTX 1660", "GTX 1660 Ti", "RTX 2060",
    "RTX 2070", "RTX 2080", "RTX 2080 Ti", "RTX 3060", "RTX 3070", "RTX 3080", "RTX 3090", "RTX 4060",
    "RTX 4060 Ti", "RTX 4070", "RTX 4080", "RTX 4090", "RTX 5060", "RTX 5070", "RTX 5080", "RTX 5090",
    # workstation
    "RTX A4000", "RTX A6000", "RTX 6000 Ada", "RTX PRO 6000 Blackwell",
    # datacenter and others
    "T4", "V100", "A10", "A10G", "A30", "A40", "A100 40GB", "A100 80GB", "L4", "L40S", "H100 PCIe", "H100 SXM",
    "H100 NVL", "H200", "B200", "GB10", "Jetson AGX Orin",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_gpus_are_known(name):
    info = K.lookup_gpu(name)
    assert info is not None, name
    assert info.family != "?"


@pytest.mark.parametrize("name, canonical, cc, vram, bf16", [
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", "8.9", 24, True),
    ("rtx4090", "GeForce RTX 4090", "8.9", 24, True),
    ("4090", "GeForce RTX 4090", "8.9", 24, True),
    ("NVIDIA GeForce RTX 5090", "GeForce RTX 5090", "12.0", 32, True),
    ("A100 80GB", "A100 80GB", "8.0", 80, True),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB", "8.0", 40, True),
    ("Tesla T4", "Tesla T4", "7.5", 16, False),
    ("NVIDIA GeForce GTX 1080", "GeForce GTX 1080", "6.1", 8, False),
    ("4060 Ti 16GB", "GeForce RTX 4060 Ti 16GB", "8.9", 16, True),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", "9.0", 80, True),
    ("H200", "H200", "9.0", 141, True),
])
def test_lookup_gpu(name, canonical, cc, vram, bf16):
    info = K.lookup_gpu(name)
    assert (info.name, info.cc, info.vram_gb, info.bf16) == (canonical, cc, vram, bf16)
    assert info.source


def test_lookup_gpu_h100_is_hopper():
    info = K.lookup_gpu("H100")
    assert info.cc == "9.0" and info.family == "Hopper" and info.vram_gb >= 80


@pytest.mark.parametrize("name", ["", "   ", "Radeon RX 7900", "foo"])
def test_lookup_gpu_unknown(name):
    assert K.lookup_gpu(name) is None


def _exists(choice) -> bool:
    rel = K.torch_release(choice.version)
    return bool(rel) and rel["latest"] == choice.version and choice.variant in rel["variants"]


def test_best_torch_install_only_returns_pairs_that_exist():
    ccs = [r["cc"] for r in K.load("families")["cc"]] + [None]
    drivers = [None, "11.4", "11.8", "12.0", "12.2", "12.4", "12.6", "12.8", "12.9", "13.0", "13.2"]
    for system in ("Linux", "Windows"):
        for cc in ccs:
            for dc in drivers:
                c = K.best_torch_install(cc, dc, system)
                if c.variant is None:
                    continue
                assert _exists(c), (cc, dc, system, c)
                assert c.index_url == f"https://download.pytorch.org/whl/{c.variant}"
                if cc:
                    assert K.arch_supports(K.torch_arch_list(c.version, c.variant, system), cc), (cc, dc, c)
                assert K.vkey(c.version) >= K.vkey(K.min_torch()), (cc, dc, c)  # transformers 5 needs torch 2.6
                if dc and not c.driver_needed:  # runs on this driver: fully, or within the same CUDA major
                    cuda = f"{c.variant[2:-1]}.{c.variant[-1]}"
                    assert K.vkey(cuda) <= K.vkey(dc) or K.vkey(cuda)[0] == K.vkey(dc)[0], (cc, dc, c)


@pytest.mark.parametrize("cc, driver_cuda, system, version, variant, driver_needed", [
    # RTX 50 on a 570 driver: 2.12+ dropped cu128 and their cu126 has no sm_120, so 2.11 cu128 is the newest it runs
    ("12.0", "12.8", "Linux", "2.11.0", "cu128", None),
    ("12.0", "13.0", "Linux", "2.14.0", "cu130", None),  # a 580 driver: the newest release, its stable CUDA
    ("12.0", "12.4", "Linux", "2.14.0", "cu130", "580.65.06"),  # the driver must change anyway: name the newest
    ("12.0", "12.4", "Windows", "2.14.0", "cu130", "580.65.06"),
    ("6.1", "12.8", "Linux", "2.14.0", "cu126", None),  # Pascal: only the legacy cu126 builds keep sm_60
    ("8.6", "12.2", "Linux", "2.14.0", "cu126", None),  # a 535 driver runs cu126 by minor-version compatibility
    ("8.6", "11.4", "Linux", "2.7.1", "cu118", None),  # a 470 driver: cu118, never a torch older than 2.6
    ("7.0", "12.8", "Linux", "2.14.0", "cu126", None),  # Volta: dropped from cu128 in 2.11, still in cu126
    ("8.9", "13.0", "Linux", "2.14.0", "cu130", None),  # stable cu130 preferred over legacy cu126 when both run
    ("8.9", "12.8", "Linux", "2.14.0", "cu126", None),
    ("9.0", "12.8", "Linux", "2.14.0", "cu126", None),  # Hopper: sm_90 is in the legacy cu126 list too
])
def test_best_torch_install(cc, driver_cuda, system, version, variant, driver_needed):
    c = K.best_torch_install(cc, driver_cuda, system)
    assert (c.version, c.variant, c.driver_needed) == (version, variant, driver_needed)
    assert _exists(c)
    assert c.why


def test_an_rtx50_on_a_570_driver_hears_what_a_newer_driver_allows():
    c = K.best_torch_install("12.0", "12.8", "Linux")
    assert c.version == "2.11.0" and "580.65.06" in c.why and "2.14.0 cu130" in c.why
    assert "would allow" not in K.best_torch_install("12.0", "13.0", "Linux").why


def test_driver_cuda_from_the_driver_version_when_no_cuda_version_was_reported():
    assert K.driver_cuda("12.9", "575.51.03") == "12.9"
    assert K.driver_cuda(None, "570.124.04") == "12.8"
    assert K.driver_cuda(None, "580.95.05") == "13.0"
    assert K.driver_cuda(None, None) is None


def test_best_torch_install_with_an_unknown_driver_names_the_driver_it_needs():
    c = K.best_torch_install("12.0", None, "Linux")
    assert (c.version, c.variant, c.driver_needed) == ("2.14.0", "cu130", None)
    assert "580.65.06" in c.why


def test_best_torch_install_for_a_kepler_gpu_says_none_fits():
    c = K.best_torch_install("3.5", "11.4", "Linux")  # Kepler
    assert c.variant is None and c.version is None and "3.5" in c.why


def test_best_torch_install_for_a_future_gpu_relies_on_ptx():
    c = K.best_torch_install("15.0", "13.0", "Linux")
    assert "compute_120" in K.torch_arch_list(c.version, c.variant)


@pytest.mark.parametrize("arch, cc, ok", [
    (["sm_80", "sm_86", "sm_90"], "8.9", True),  # same major, newer minor: binary compatible
    (["sm_80", "sm_90"], "12.0", False),
    (["sm_90", "compute_90"], "12.0", True),  # PTX JIT
    (["sm_75", "sm_80"], "6.1", False),
    (["sm_120"], "12.1", True),
    (["sm_90a"], "9.0", False),  # arch-specific cubins are not portable
])
def test_arch_supports(arch, cc, ok):
    assert K.arch_supports(arch, cc) is ok


def test_bnb_minimums():
    assert K.bnb_min("windows")[0] == "0.43.0"
    assert K.bnb_min("blackwell")[0] == "0.45.3"
    assert K.bnb_min("cu130")[0] == "0.48.0"
    assert K.bnb_min("nothing") is None
    assert K.version_lt("0.42.0", "0.43.0") and not K.version_lt("0.45.3", "0.45.3")
    assert not K.version_lt(None, "1.0") and not K.version_lt("garbage", "1.0")


def test_variant_of():
    assert K.variant_of("2.7.1+cu128", "12.8") == "cu128"
    assert K.variant_of("2.7.1", "12.6") == "cu126"
    assert K.variant_of("2.13.0+cpu", None) is None
    assert K.variant_of(None, None) is None


def test_best_torch_install_never_goes_below_tunedocs_floor():
    assert K.best_torch_install("8.6", "11.4", "Linux").version == "2.7.1"  # newest with cu118
    assert K.best_torch_install("7.0", "12.8", "Linux").version == "2.14.0"  # Volta: the legacy cu126 builds
    assert "minor-version" in K.best_torch_install("8.6", "12.2", "Linux").why
