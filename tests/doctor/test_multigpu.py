"""The doctor on boxes with two or more GPUs (issue 13 item 6): the `nvidia-smi topo` parser on real pasted samples,
the rules on the machine fixtures (tests/doctor/fixtures/machines: 2x RTX 4090 without P2P, 2x A100 with NVLink,
RTX 3060 + RTX 3090, Windows with 2x RTX 5060 Ti), the torch child's NCCL and peer-access facts, and the live
`nvidia-smi topo` probe with a fake nvidia-smi."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import GPU, Facts
from tunedoc.doctor.probes import nvidia, pyenv
from tunedoc.doctor.reports import parse_text
from tunedoc.doctor.reports.topo import parse_topo
from tunedoc.doctor.rules import evaluate
from tunedoc.doctor.rules.catalog import CATALOG

from test_probes import fake_packages  # the same fake torch/bitsandbytes packages as the probe tests

FIX = Path(__file__).parent / "fixtures"
TOPO = FIX / "topo"
MACHINES = FIX / "machines"
NEW_IDS = ("torch-no-nccl", "gpu-no-p2p", "gpu-link-slow", "gpu-mixed")


def machine(name: str) -> Facts:
    return Facts.from_json((MACHINES / f"{name}.json").read_text())


def by_id(findings):
    return {f.id: f for f in findings}


def commands(f) -> list[str]:
    return [c for fix in f.fixes for c in fix.commands]


# --- the topo parser on real samples (sources: fixtures/topo/README.md) ----------------------------------------------
@pytest.mark.parametrize("name, n, first_row, p2p", [
    ("2x-rtx5090-phb-p2p-gns.txt", 2, ["X", "PHB"], [["X", "GNS"], ["GNS", "X"]]),
    ("2gpu-node-p2p-ns-wrapped-legend.txt", 2, ["X", "NODE"], [["X", "NS"], ["NS", "X"]]),
    ("8x-rtx4090-sys-nics.txt", 8, ["X"] + ["SYS"] * 7, None),
    ("4x-h100-nv6-nics.txt", 4, ["X", "NV6", "NV6", "NV6"], None),
    ("3x-rtxa6000-nv4-pair-node.txt", 3, ["X", "NV4", "NODE"], None),
    ("2x-rtx3090-nvlink-nv4-with-smi.txt", 2, ["X", "NV4"], None),
])
def test_topo_matrix_of_real_pastes(name, n, first_row, p2p):
    t = parse_topo((TOPO / name).read_text())
    assert t.gpus == [f"GPU{i}" for i in range(n)]
    assert t.links[0] == first_row and len(t.links) == n and all(len(r) == n for r in t.links)  # NIC columns dropped
    assert all(t.links[i][i] == "X" for i in range(n))
    assert all(t.links[i][j] == t.links[j][i] for i in range(n) for j in range(n))
    assert t.p2p == p2p


def test_topo_legend_is_read_and_a_wrapped_line_joins_its_entry():
    t = parse_topo((TOPO / "2gpu-node-p2p-ns-wrapped-legend.txt").read_text())
    assert t.legend["SYS"] == ("Connection traversing PCIe as well as the SMP interconnect between NUMA nodes "
                               "(e.g., QPI/UPI)")
    assert t.legend["NV#"] == "Connection traversing a bonded set of # NVLinks"
    assert t.legend["GNS"] == "GPU not supported" and t.legend["NS"] == "Not supported"


def test_topo_cut_off_by_the_paste_says_nothing_rather_than_half():
    assert parse_topo((TOPO / "8gpu-pix-phb-sys-mlx4-cut-off.txt").read_text()) is None
    assert parse_topo("GPU0 GPU1\nGPU0 X PHB\n") is None  # a row missing
    assert parse_topo("the GPU0 and GPU1 are linked by NVLink") is None


def test_old_driver_soc_is_read_as_sys():
    t = parse_topo("\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tSOC\t0-11\nGPU1\tSOC\t X \t12-23\n")
    assert t.links == [["X", "SYS"], ["SYS", "X"]]


def test_pasted_smi_table_and_topo_become_one_machine_with_its_links():
    f = parse_text((TOPO / "2x-rtx3090-nvlink-nv4-with-smi.txt").read_text(), "paste.txt")
    assert "nvidia-smi-topo" in f.sources and [g.name for g in f.gpus] == ["NVIDIA GeForce RTX 3090"] * 2
    fs = by_id(evaluate(f))
    assert "GPU0-GPU1: NVLink (4 bonded links)" in fs["gpu-ok"].evidence
    assert not set(NEW_IDS) & set(fs)  # RTX 30 cards with NVLink: nothing to warn about


def test_pasted_5090_table_with_its_p2p_matrix_warns_and_quotes_the_matrix():
    """The RTX 5090 pair of club-3090#1229 (its topo and p2p matrices) with an nvidia-smi table naming the cards."""
    smi = (TOPO / "2x-rtx3090-nvlink-nv4-with-smi.txt").read_text().split("- 使用了 NVlink")[0]
    smi = smi.replace("NVIDIA GeForce RTX 3090     ", "NVIDIA GeForce RTX 5090     ")
    f = parse_text(smi + (TOPO / "2x-rtx5090-phb-p2p-gns.txt").read_text(), "paste.txt")
    fs = by_id(evaluate(f))
    w = fs["gpu-no-p2p"]
    assert w.severity == "warning" and w.title.startswith("2 x RTX 5090: no peer-to-peer access")
    assert "nvidia-smi topo -p2p: GPU0-GPU1 GNS (not supported by the GPU)" in w.evidence
    assert commands(w)[0] == "export NCCL_P2P_DISABLE=1"


def test_topology_alone_is_enough_to_know_there_are_two_gpus():
    f = parse_text((TOPO / "8x-rtx4090-sys-nics.txt").read_text())
    fs = by_id(evaluate(f))
    slow = fs["gpu-link-slow"]
    assert slow.severity == "info" and slow.title.startswith("Every pair of the 8 GPUs is linked only across CPU")
    assert slow.fixes == []  # no group of cards shares a CPU: nothing to pick
    assert fs["gpu-ok"].title == "8 GPUs"


# --- the rules on the machine fixtures ------------------------------------------------------------------------------
def test_two_rtx4090_without_p2p_warn_and_give_the_export_line():
    fs = by_id(evaluate(machine("2x-rtx4090-no-p2p")))
    w = fs["gpu-no-p2p"]
    assert w.severity == "warning" and w.area == "gpu"
    assert "tunedoc train sets it; torchrun and accelerate need it" in w.title
    assert "torch.cuda.can_device_access_peer(0, 1) = False" in w.evidence
    assert commands(w) == ["export NCCL_P2P_DISABLE=1", "NCCL_P2P_DISABLE=1 torchrun --nproc_per_node 2 train.py",
                           "NCCL_P2P_DISABLE=1 accelerate launch train.py"]
    assert w.fixes[0].applicable
    assert "gpu-ok" in fs  # the cards work: the ok line stays beside the advice
    assert not {"device-order", "gpu-mixed", "torch-no-nccl", "gpu-link-slow"} & set(fs)


def test_p2p_warning_goes_once_the_variable_is_set_and_never_fires_on_one_card_or_on_windows():
    f = machine("2x-rtx4090-no-p2p")
    f.env.vars["NCCL_P2P_DISABLE"] = "1"
    assert "gpu-no-p2p" not in by_id(evaluate(f))
    one = machine("2x-rtx4090-no-p2p")
    one.gpus, one.torch.device_count, one.topology.links, one.topology.p2p = one.gpus[:1], 1, None, None
    one.torch.devices, one.torch.peer_access, one.topology.gpus = one.torch.devices[:1], None, []
    assert not set(NEW_IDS) & set(by_id(evaluate(one)))
    win = machine("windows-2x-rtx5060ti")  # GeForce RTX 50 too, but Windows has no NCCL to hang
    fs = by_id(evaluate(win))
    assert "gpu-no-p2p" not in fs and {"win-no-nccl", "win-libuv"} <= set(fs)
    assert "gloo" in fs["win-no-nccl"].fixes[0].title and "tunedoc train sets it itself" in fs["win-libuv"].title
    assert commands(fs["win-no-nccl"]) == ["tunedoc train --model MODEL --data DATA --gpus all",
                                           '$env:CUDA_VISIBLE_DEVICES = "0"']


def test_p2p_on_wsl_gets_bash_and_a_patched_driver_that_reports_peer_access_is_only_info():
    f = machine("2x-rtx4090-no-p2p")
    f.platform.is_wsl = True
    assert commands(by_id(evaluate(f))["gpu-no-p2p"])[0] == "export NCCL_P2P_DISABLE=1"
    f.torch.peer_access = [[None, True], [True, None]]
    f.topology.p2p = [["X", "OK"], ["OK", "X"]]
    w = by_id(evaluate(f))["gpu-no-p2p"]
    assert w.severity == "info" and "reports peer access" in w.title


def test_two_a100_with_nvlink_are_ready_and_the_link_is_shown():
    fs = by_id(evaluate(machine("2x-a100-nvlink")))
    assert not set(NEW_IDS + ("device-order",)) & set(fs)
    assert fs["gpu-ok"].title.startswith("2 x NVIDIA A100-SXM4-80GB")
    assert "GPU0-GPU1: NVLink (12 bonded links)" in fs["gpu-ok"].evidence


def test_mixed_3060_3090_says_which_card_is_which_and_how_to_pick():
    fs = by_id(evaluate(machine("mixed-3090-3060")))
    order = fs["device-order"]
    assert order.severity == "warning"
    assert order.title == ("CUDA numbers these GPUs differently from nvidia-smi: torch's cuda:0 is nvidia-smi's "
                           "GPU 1 (RTX 3090)")
    assert "torch cuda:1 is nvidia-smi's GPU 0 (RTX 3060)" in order.evidence
    assert commands(order) == ["export CUDA_DEVICE_ORDER=PCI_BUS_ID"] and order.fixes[0].applicable
    mixed = fs["gpu-mixed"]
    assert mixed.severity == "info"
    assert "smallest card (RTX 3060, 12 GB) decides what fits" in mixed.title
    assert commands(mixed) == ["tunedoc train --model MODEL --data DATA --gpus 1,",
                               'tunedoc fit --model MODEL --gpu "NVIDIA GeForce RTX 3060" --gpus 2',
                               "export CUDA_DEVICE_ORDER=PCI_BUS_ID", "export CUDA_VISIBLE_DEVICES=1"]


def test_device_order_is_quiet_when_set_or_when_the_orders_agree_and_generic_when_unknown():
    f = machine("mixed-3090-3060")
    f.env.vars["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    assert "device-order" not in by_id(evaluate(f))
    same = machine("mixed-3090-3060")
    same.torch.devices = list(reversed(same.torch.devices))  # CUDA's order = the PCI order on this box
    assert "device-order" not in by_id(evaluate(same))
    by_name = machine("mixed-3090-3060")  # an older torch: no UUID or PCI address, the names still tell
    for d in by_name.torch.devices:
        d.pop("uuid"), d.pop("pci_bus_id")
    assert "cuda:0 is nvidia-smi's GPU 1 (RTX 3090)" in by_id(evaluate(by_name))["device-order"].title
    unknown = machine("mixed-3090-3060")
    unknown.torch.devices = []
    t = by_id(evaluate(unknown))["device-order"].title
    assert "fastest first" in t and "CUDA_VISIBLE_DEVICES=0 may not be nvidia-smi's GPU 0" in t


def test_mixed_on_windows_gives_powershell_and_three_cards_keep_the_matching_pair():
    f = machine("windows-2x-rtx5060ti")
    f.gpus.append(GPU(index=2, name="NVIDIA GeForce RTX 4060 Ti", compute_capability="8.9", memory_total_mb=8188,
                      pci_bus_id="00000000:09:00.0"))
    f.torch.devices, f.torch.device_count = [], 3  # torch's order not known: the generic device-order line
    fs = by_id(evaluate(f))
    mixed = fs["gpu-mixed"]
    assert commands(mixed) == ["tunedoc train --model MODEL --data DATA --gpus 0,1",
                               'tunedoc fit --model MODEL --gpu "NVIDIA GeForce RTX 4060 Ti" --gpus 3',
                               '$env:CUDA_DEVICE_ORDER = "PCI_BUS_ID"', '$env:CUDA_VISIBLE_DEVICES = "0,1"']
    assert mixed.fixes[0].shell == "powershell"
    assert commands(fs["device-order"]) == ['$env:CUDA_DEVICE_ORDER = "PCI_BUS_ID"']


def test_torch_without_nccl_on_linux_gets_the_cuda_wheel():
    f = machine("2x-rtx4090-no-p2p")
    f.torch.nccl_available, f.torch.nccl_version = False, None
    w = by_id(evaluate(f))["torch-no-nccl"]
    assert w.severity == "warning" and w.area == "torch"
    assert "torch.distributed.is_nccl_available() = False" in w.evidence
    cmd = commands(w)[0]
    assert cmd.startswith("/home/ana/venv/bin/python -m pip install --upgrade")
    assert "--index-url https://download.pytorch.org/whl/cu12" in cmd
    broken = machine("2x-rtx4090-no-p2p")
    broken.torch.nccl_error = "RuntimeError: NCCL Error 2: unhandled system error"
    assert "torch.cuda.nccl.version(): RuntimeError: NCCL Error 2" in " ".join(
        by_id(evaluate(broken))["torch-no-nccl"].evidence)


@pytest.mark.parametrize("change", ["one_gpu", "windows", "cpu_build", "unknown"])
def test_torch_no_nccl_does_not_fire(change):
    f = machine("2x-rtx4090-no-p2p")
    f.torch.nccl_available = False
    if change == "one_gpu":
        f.gpus, f.torch.device_count, f.topology.gpus = f.gpus[:1], 1, []
    elif change == "windows":
        f.platform.system = "Windows"
    elif change == "cpu_build":
        f.torch.version, f.torch.cuda = "2.9.1+cpu", None
    else:
        f.torch.nccl_available = None  # an older probe's facts: not known, not claimed
    assert "torch-no-nccl" not in by_id(evaluate(f))


def test_nccl_missing_in_a_linux_log_is_the_torch_build_not_windows():
    line = "RuntimeError: Distributed package doesn't have NCCL built in"
    linux = f'File "/home/u/venv/lib/python3.11/site-packages/torch/distributed/x.py", line 3\n{line}'
    assert {s.id for s in parse_text(linux).signatures} == {"torch-no-nccl"}
    assert {s.id for s in parse_text(line).signatures} == {"win-no-nccl"}  # no platform known: as before


def test_link_slow_offers_the_cards_behind_one_cpu():
    f = machine("2x-a100-nvlink")
    row = lambda *c: list(c)  # noqa: E731
    f.topology.gpus = [f"GPU{i}" for i in range(4)]
    f.topology.links = [row("X", "NODE", "SYS", "SYS"), row("NODE", "X", "SYS", "SYS"),
                        row("SYS", "SYS", "X", "NODE"), row("SYS", "SYS", "NODE", "X")]
    w = by_id(evaluate(f))["gpu-link-slow"]
    assert w.title.startswith("Some of the 4 GPUs are linked only across CPU sockets (SYS: GPU0-GPU2")
    assert commands(w) == ["tunedoc train --model MODEL --data DATA --gpus 0,1"]


def test_the_launcher_disables_p2p_for_exactly_the_cards_the_doctor_warns_about():
    from tunedoc.trainer.distributed import launch_env

    for name in ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090 D", "NVIDIA GeForce RTX 5090",
                 "NVIDIA GeForce RTX 5060 Ti", "NVIDIA GeForce RTX 3090", "NVIDIA A100-SXM4-80GB",
                 "NVIDIA RTX 6000 Ada Generation", "NVIDIA H100 80GB HBM3"):
        env, _ = launch_env([0, 1], [name, name], windows=False)
        assert (env.get("NCCL_P2P_DISABLE") == "1") == bool(K.no_p2p(name)), name
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # what device-order's and gpu-mixed's titles promise


def test_new_ids_are_in_the_catalog_and_the_documented_table():
    from tunedoc.doctor import rules

    for fid in NEW_IDS:
        assert fid in CATALOG and f"    {fid} " in rules.__doc__


def test_json_output_carries_the_new_facts(tmp_path, capsys):
    from tunedoc.cli import main

    rc = main(["doctor", "--json", "--from", str(MACHINES / "2x-rtx4090-no-p2p.json")])
    data = json.loads(capsys.readouterr().out)
    assert data["facts"]["topology"]["links"] == [["X", "PHB"], ["PHB", "X"]]
    assert data["facts"]["torch"]["nccl_version"] == "2.27.3"
    assert data["facts"]["torch"]["peer_access"] == [[None, False], [False, None]]
    assert "gpu-no-p2p" in {f["id"] for f in data["findings"]} and rc == 0


def test_merging_two_reports_keeps_the_first_matrix_whole():
    from tunedoc.doctor.facts import merge

    a, b = machine("2x-rtx4090-no-p2p"), machine("2x-a100-nvlink")
    m = merge(a, b)
    assert m.topology.links == [["X", "PHB"], ["PHB", "X"]] and m.torch.peer_access == [[None, False], [False, None]]


# --- the torch child: NCCL version and peer access ------------------------------------------------------------------
CUDA_TORCH = """
    __version__ = "2.9.1+cu128"
    __file__ = __file__
    class version:
        cuda = "12.8"
        hip = None
    class _Props:
        def __init__(self, i):
            self.name = ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3060"][i]
            self.major, self.minor = 8, 6
            self.total_memory = [24, 12][i] * 2**30
            self.uuid = ["c08b2d4f-6e3a-4197-b5d2-1f9a7e3c6b04", "5e1a7c3d-9b2f-4e60-8d14-a3c7f0b2e958"][i]
            self.pci_bus_id, self.pci_device_id, self.pci_domain_id = [2, 1][i], 0, 0
    from . import cuda, distributed
    def ones(n, device=None):
        class T:
            def __mul__(self, k):
                return self
            def sum(self):
                return self
            def item(self):
                return 16.0
        return T()
"""
CUDA_MOD = """
    import os
    def is_available():
        return True
    def device_count():
        return 2
    def get_arch_list():
        return ["sm_80", "sm_86", "sm_90"]
    def get_device_properties(i):
        import torch
        return torch._Props(i)
    def can_device_access_peer(i, j):
        if os.environ.get("FAKE_PEER") == "raise":
            raise RuntimeError("peer query failed")
        return False
"""
NCCL_OK = "def version():\n    return (2, 27, 3)\n"
NCCL_BROKEN = "def version():\n    raise RuntimeError('NCCL Error 2: unhandled system error')\n"
DIST = """
    def is_available():
        return True
    def is_nccl_available():
        return True
    class TCPStore:
        def __init__(self, *a, **k):
            self.libuvBackend = True
"""


def probe_child(tmp_path, monkeypatch, nccl: str) -> Facts:
    fake_packages(tmp_path, monkeypatch, torch=CUDA_TORCH, **{"torch/cuda": CUDA_MOD, "torch/cuda/nccl": nccl,
                                                                "torch/distributed": DIST})
    facts = Facts()
    ts, _ = pyenv.probe_torch_bnb(facts, sys.executable, timeout=60)
    assert ts.ok, ts
    return facts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="NCCL is asked for on Linux only")
def test_torch_child_records_nccl_version_peer_access_and_device_ids(tmp_path, monkeypatch):
    t = probe_child(tmp_path, monkeypatch, NCCL_OK).torch
    assert t.nccl_available is True and t.nccl_version == "2.27.3" and t.nccl_error is None
    assert t.libuv_available is True  # the child asks TCPStore for libuv; the fact keeps its answer
    assert t.peer_access == [[None, False], [False, None]]
    assert t.devices[0]["uuid"] == "c08b2d4f-6e3a-4197-b5d2-1f9a7e3c6b04"
    assert [d["pci_bus_id"] for d in t.devices] == ["00000000:02:00.0", "00000000:01:00.0"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="NCCL is asked for on Linux only")
def test_torch_child_survives_a_broken_nccl_and_failing_peer_queries(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PEER", "raise")
    t = probe_child(tmp_path, monkeypatch, NCCL_BROKEN).torch
    assert t.nccl_version is None and t.nccl_error == "RuntimeError: NCCL Error 2: unhandled system error"
    assert t.peer_access == [[None, None], [None, None]]
    assert t.cuda_op_ok is True and [d["name"] for d in t.devices] == ["NVIDIA GeForce RTX 3090",
                                                                       "NVIDIA GeForce RTX 3060"]


def test_torch_child_on_this_cpu_box_still_answers_without_gpu_facts():
    facts = Facts()
    ts, _ = pyenv.probe_torch_bnb(facts, sys.executable, timeout=120)
    t = facts.torch
    assert ts.ok and t.import_ok
    if not t.cuda:  # the CPU build here: nothing about NCCL's version or peers is claimed
        assert t.nccl_version is None and t.nccl_error is None and t.peer_access is None


# --- the live `nvidia-smi topo` probe with a fake nvidia-smi -------------------------------------------------------
def fake_smi(tmp_path: Path, monkeypatch, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


def _smi_script(tmp_path, csv_lines: int, topo: str) -> str:
    csv = (FIX / "probe" / "nvidia-smi-query-2gpu.csv").read_text().splitlines()[:csv_lines]
    (tmp_path / "q.csv").write_text("\n".join(csv) + "\n")
    (tmp_path / "plain.txt").write_text((FIX / "probe" / "nvidia-smi-plain.txt").read_text())
    (tmp_path / "m.txt").write_text((TOPO / "2x-rtx5090-phb-p2p-gns.txt").read_text().split("</details>")[0])
    (tmp_path / "p2p.txt").write_text((TOPO / "2x-rtx5090-phb-p2p-gns.txt").read_text().split("</details>")[1])
    return f"""
        case "$1 $2" in
          --query-gpu=*) cat {tmp_path}/q.csv ;;
          "topo -m") echo topo >> {tmp_path}/calls; {topo} ;;
          "topo -p2p") echo p2p >> {tmp_path}/calls; cat {tmp_path}/p2p.txt ;;
          *) cat {tmp_path}/plain.txt ;;
        esac
    """


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_probe_reads_topology_with_two_gpus(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, _smi_script(tmp_path, 2, f"cat {tmp_path}/m.txt"))
    facts = Facts()
    nvidia.probe_nvidia_smi(facts, timeout=10)
    t = facts.topology
    assert len(facts.gpus) == 2 and t.source == "nvidia-smi topo -m" and t.error is None
    assert t.links == [["X", "PHB"], ["PHB", "X"]] and t.p2p == [["X", "GNS"], ["GNS", "X"]]


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_probe_skips_topology_with_one_gpu(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, _smi_script(tmp_path, 1, f"cat {tmp_path}/m.txt"))
    facts = Facts()
    nvidia.probe_nvidia_smi(facts, timeout=10)
    assert len(facts.gpus) == 1 and facts.topology.links is None and not (tmp_path / "calls").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_probe_topology_that_hangs_is_cut_short_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(nvidia, "TOPO_TIMEOUT", 1.0)
    fake_smi(tmp_path, monkeypatch, _smi_script(tmp_path, 2, "sleep 30"))
    facts = Facts()
    t0 = time.monotonic()
    nvidia.probe_nvidia_smi(facts, timeout=10)
    assert time.monotonic() - t0 < 8
    t = facts.topology
    assert t.links is None and "`nvidia-smi topo -m` did not answer within 1 s" in t.error
    assert t.p2p == [["X", "GNS"], ["GNS", "X"]]  # the other query still answered
    assert len(facts.gpus) == 2 and facts.driver.nvidia_smi_error is None


def test_nccl_missing_in_a_linux_log_comes_with_the_cuda_wheel():
    linux = ('File "/home/u/venv/lib/python3.11/site-packages/torch/distributed/x.py", line 3\n'
             "RuntimeError: Distributed package doesn't have NCCL built in")
    w = by_id(evaluate(parse_text(linux)))["torch-no-nccl"]
    assert "--index-url https://download.pytorch.org/whl/cu1" in commands(w)[0] and "bundle NCCL" in w.fixes[0].title


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="NCCL is asked for on Linux only")
def test_torch_child_that_crashes_in_nccl_keeps_the_torch_facts(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch=CUDA_TORCH, **{
        "torch/cuda": CUDA_MOD, "torch/distributed": DIST,
        "torch/cuda/nccl": "import os\ndef version():\n    os.abort()\n"})
    facts = Facts()
    ts, bs = pyenv.probe_torch_bnb(facts, sys.executable, timeout=60)
    t = facts.torch
    assert t.import_ok and t.version == "2.9.1+cu128" and len(t.devices) == 2  # printed before the crash
    assert t.nccl_error == "asking NCCL's version and peer access crashed with SIGABRT"
    assert not bs.ok and "not tried" in bs.error and facts.bnb.import_ok is None
    fs = by_id(evaluate(facts.__class__.from_dict({**facts.to_dict(), "gpus": [
        {"index": 0, "name": "NVIDIA GeForce RTX 3090"}, {"index": 1, "name": "NVIDIA GeForce RTX 3060"}],
        "platform": {"system": "Linux"}})))
    assert "crashed with SIGABRT" in " ".join(fs["torch-no-nccl"].evidence)


def test_a_broken_nccl_is_said_as_such_not_as_missing():
    f = machine("2x-rtx4090-no-p2p")
    f.torch.nccl_error = "RuntimeError: NCCL Error 2: unhandled system error"
    assert by_id(evaluate(f))["torch-no-nccl"].title.startswith("NCCL in PyTorch 2.9.1+cu128 fails when asked")
