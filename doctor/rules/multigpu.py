"""Rules for a box (or a pasted report) with two or more GPUs: data-parallel training's needs.

- `torch-no-nccl`: a CUDA torch on Linux without NCCL (torch.distributed's GPU backend).
- `gpu-no-p2p`: GeForce RTX 40/50 cards without peer access, where NCCL hangs unless NCCL_P2P_DISABLE=1.
- `gpu-link-slow`: cards linked only across CPU sockets (`nvidia-smi topo -m` SYS).
- `gpu-mixed`: different models or memory sizes.
- `device-order`: CUDA's default numbering (fastest first) is not nvidia-smi's (PCI bus), and with different cards
  that matters: torch's cuda:0 is not nvidia-smi's GPU 0.

Facts used: `facts.gpus` (NVML / nvidia-smi, PCI order), `facts.topology` (`nvidia-smi topo -m` and `-p2p r`, probed
or pasted), `facts.torch` (nccl_available, nccl_version/nccl_error, peer_access, devices in torch's order with their
UUID and PCI address), `facts.env.vars` (CUDA_DEVICE_ORDER, NCCL_P2P_DISABLE). Nothing fires with fewer than two GPUs.
"""

from __future__ import annotations

import re

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import GPU, Facts
from tunedoc.doctor.findings import Fix
from tunedoc.doctor.fixes import set_env, shell_of
from tunedoc.doctor.reports.topo import P2P_WORDS, describe, link_kind
from tunedoc.doctor.rules.catalog import make


def gpu_count(facts: Facts) -> int:
    """How many GPUs the facts know of: NVML/nvidia-smi, else torch, else a pasted topology matrix."""
    return len(facts.gpus or []) or (facts.torch.device_count or 0) or len(facts.topology.gpus)


def _names(facts: Facts) -> list[str]:
    """GPU names in nvidia-smi's (PCI) order where known, else torch's."""
    if facts.gpus:
        return [g.name or "NVIDIA GPU" for g in facts.gpus]
    return [d.get("name") or "NVIDIA GPU" for d in facts.torch.devices]


def short(name: str | None) -> str:
    return re.sub(r"^NVIDIA\s+", "", name or "GPU").replace("GeForce ", "")


def _windows(facts: Facts) -> bool:
    return facts.platform.system == "Windows"


# --- NCCL in the torch build ------------------------------------------------------------------------------------
def nccl_rules(facts: Facts):
    t, n = facts.torch, gpu_count(facts)
    if n < 2 or facts.platform.system != "Linux" or t.import_ok is not True or not t.cuda:
        return []
    if t.nccl_available is not False and not t.nccl_error:
        return []
    from tunedoc.doctor.rules.python import _best_fix

    ev = [f"{n} GPUs", f"torch {t.version} (CUDA {t.cuda})"]
    if t.nccl_available is False:
        ev.append("torch.distributed.is_nccl_available() = False")
    if t.nccl_error:
        ev.append(f"torch.cuda.nccl.version(): {t.nccl_error}")
    fixes, _ = _best_fix(facts, "Reinstall PyTorch from its CUDA index (its wheels bundle NCCL)")
    if t.nccl_available is False:
        title = (f"PyTorch {t.version} has no NCCL: training on the {n} GPUs would fall back to gloo (slow) and "
                 "torchrun/accelerate with nccl fail")
    else:
        title = (f"NCCL in PyTorch {t.version} fails when asked its version: training on the {n} GPUs may fail "
                 "to start or hang")
    return [make("torch-no-nccl", title=title, evidence=ev, fixes=fixes)]


# --- peer access and links --------------------------------------------------------------------------------------
def _pairs(n: int):
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _peer_evidence(facts: Facts) -> tuple[list[str], bool | None]:
    """Evidence lines about peer access, and whether every pair has it (None: unknown)."""
    ev, verdicts = [], []
    p2p = facts.topology.p2p
    if p2p:
        for i, j in _pairs(len(p2p)):
            code = p2p[i][j]
            verdicts.append(code == "OK")
            ev.append(f"nvidia-smi topo -p2p: GPU{i}-GPU{j} {code} ({P2P_WORDS.get(code, code)})")
    peer = facts.torch.peer_access
    if peer:
        for i, j in _pairs(len(peer)):
            v = peer[i][j]
            if v is not None:
                verdicts.append(bool(v))
                ev.append(f"torch.cuda.can_device_access_peer({i}, {j}) = {v}")
    return ev[:8], (all(verdicts) if verdicts else None)


def p2p_rules(facts: Facts):
    n = gpu_count(facts)
    if n < 2 or _windows(facts):  # Windows has no NCCL at all (win-no-nccl says so)
        return []
    names = _names(facts)
    rows = [K.no_p2p(x) for x in names]
    hit = [x for x, row in zip(names, rows) if row]
    if len(hit) < 2 or facts.env.vars.get("NCCL_P2P_DISABLE") == "1":
        return []
    ev, all_ok = _peer_evidence(facts)
    count = {}
    for x in hit:
        count[short(x)] = count.get(short(x), 0) + 1
    cards = " + ".join(f"{k} x {v}" if k > 1 else v for v, k in count.items())
    severity, title = None, f"{cards}: no peer-to-peer access, so NCCL can hang without NCCL_P2P_DISABLE=1 " \
                            "(tunedoc train sets it; torchrun and accelerate need it)"
    if all_ok:
        # a P2P-enabled kernel module (tinygrad's / aikitoria's patches) answers yes; NCCL then may work
        severity = "info"
        title = (f"{cards}: the driver reports peer access (a P2P-patched kernel module?); if a multi-GPU run hangs "
                 "at its first step, set NCCL_P2P_DISABLE=1")
    ev = [f"GPU {i}: {x}" for i, x in enumerate(names)] + ev
    ev.append("NCCL_P2P_DISABLE=" + facts.env.vars.get("NCCL_P2P_DISABLE", "(unset)"))
    shell = shell_of(facts)
    fixes = [
        Fix(title="For torchrun, accelerate launch, deepspeed and other tools: set it in the shell that starts them "
                  "(tunedoc train --gpus sets it for its own runs)",
            commands=[set_env(facts, "NCCL_P2P_DISABLE", "1")], shell=shell, applicable=True,
            url="https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html#nccl-p2p-disable"),
        Fix(title="Or for one command only",
            commands=[f"NCCL_P2P_DISABLE=1 torchrun --nproc_per_node {len(hit)} train.py",
                      "NCCL_P2P_DISABLE=1 accelerate launch train.py"], shell="bash"),
    ]
    return [make("gpu-no-p2p", title=title, evidence=ev, fixes=fixes, severity=severity)]


def _groups_without(links: list[list[str]], bad: str) -> list[list[int]]:
    """Connected groups of GPUs whose links are not `bad` (e.g. the cards behind each CPU socket)."""
    n, seen, out = len(links), set(), []
    for s in range(n):
        if s in seen:
            continue
        group, todo = [], [s]
        seen.add(s)
        while todo:
            i = todo.pop()
            group.append(i)
            for j in range(n):
                if j not in seen and link_kind(links[i][j]) != bad:
                    seen.add(j)
                    todo.append(j)
        out.append(sorted(group))
    return out


def link_rules(facts: Facts):
    links = facts.topology.links
    if not links or len(links) < 2:
        return []
    n = len(links)
    sys_pairs = [(i, j) for i, j in _pairs(n) if link_kind(links[i][j]) == "SYS"]
    out = []
    if sys_pairs:
        shown = ", ".join(f"GPU{i}-GPU{j}" for i, j in sys_pairs[:6]) + (" ..." if len(sys_pairs) > 6 else "")
        every = len(sys_pairs) == len(_pairs(n))
        title = (f"{'Every pair of' if every else 'Some of'} the {n} GPUs {'is' if every else 'are'} linked only "
                 f"across CPU sockets (SYS: {shown}): gradient sync is slower")
        groups = [g for g in _groups_without(links, "SYS") if len(g) >= 2]
        fixes = []
        if groups and not every:
            best = max(groups, key=len)
            ids = ",".join(map(str, best))
            fixes.append(Fix(title=f"To keep the traffic behind one CPU, train on GPUs {ids} (nvidia-smi's numbers)",
                             commands=[f"tunedoc train --model MODEL --data DATA --gpus {ids}"],
                             shell=shell_of(facts)))
        out.append(make("gpu-link-slow", title=title,
                        evidence=[f"nvidia-smi topo -m: GPU{i}-GPU{j} {links[i][j]}" for i, j in sys_pairs[:8]],
                        fixes=fixes))
    # what the links are, on the GPU line (merged into gpu-ok's evidence)
    ev = [f"GPU{i}-GPU{j}: {describe(links[i][j])}" for i, j in _pairs(n)[:12]]
    title = f"{n} GPUs" + (f": {', '.join(short(x) for x in _names(facts))}" if _names(facts) else "")
    out.append(make("gpu-ok", title=title, evidence=ev))
    return out


# --- mixed models -----------------------------------------------------------------------------------------------
def _key(g: GPU) -> tuple[str, int]:
    return (g.name or "NVIDIA GPU", round((g.memory_total_mb or 0) / 1024))


def mixed_rules(facts: Facts):
    gpus = facts.gpus or []
    if len(gpus) < 2:
        return []
    groups: dict[tuple[str, int], list[GPU]] = {}
    for g in gpus:
        groups.setdefault(_key(g), []).append(g)
    if len(groups) < 2:
        return []
    smallest = min(gpus, key=lambda g: g.memory_total_mb or 0)
    cards = " + ".join(f"{short(name)}{f' {gb} GB' if gb else ''}" + (f" x {len(gs)}" if len(gs) > 1 else "")
                       for (name, gb), gs in groups.items())
    shell = shell_of(facts)
    # the cards to keep: the largest set of matching cards, then the one with the most memory
    keep = max(groups.values(), key=lambda gs: (len(gs), gs[0].memory_total_mb or 0))
    ids = [g.index if g.index is not None else gpus.index(g) for g in keep]
    spec = ",".join(map(str, ids)) + ("," if len(ids) == 1 else "")  # "--gpus 0," is card 0; "--gpus 1" is a count
    what = f"the {len(ids)} {short(keep[0].name)}" if len(ids) > 1 else f"the {short(keep[0].name)} alone"
    fixes = [
        Fix(title=f"Train on {what} (nvidia-smi's numbering; tunedoc sets CUDA_DEVICE_ORDER=PCI_BUS_ID)",
            commands=[f"tunedoc train --model MODEL --data DATA --gpus {spec}"], shell=shell),
        Fix(title=f"Or on {'both' if len(gpus) == 2 else f'all {len(gpus)}'}: check the fit on the smallest card, "
                  f"{short(smallest.name)}",
            commands=[f'tunedoc fit --model MODEL --gpu "{smallest.name}" --gpus {len(gpus)}'], shell=shell),
        Fix(title="For other tools (torchrun, accelerate), pick the same cards by PCI order",
            commands=[set_env(facts, "CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                      set_env(facts, "CUDA_VISIBLE_DEVICES", ",".join(map(str, ids)))], shell=shell,
            applicable=True),
    ]
    smallest_gb = round((smallest.memory_total_mb or 0) / 1024)
    return [make("gpu-mixed", title=f"Mixed GPUs ({cards}): the smallest card "
                 f"({short(smallest.name)}{f', {smallest_gb} GB' if smallest_gb else ''}) decides what fits, the "
                 "slowest sets the pace",
                 evidence=[f"GPU {g.index}: {g.name}, {g.memory_total_mb} MiB" for g in gpus], fixes=fixes)]


# --- device order -----------------------------------------------------------------------------------------------
def _pci(value: str | None) -> tuple[int, int, int] | None:
    """'00000000:01:00.0' / '0000:01:00.0' -> (domain, bus, device)."""
    m = re.match(r"^([0-9A-Fa-f]+):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})", value or "")
    return (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)) if m else None


def _uuid(value: str | None) -> str | None:
    return re.sub(r"^GPU-", "", value.strip(), flags=re.I).lower() if value else None


def torch_to_smi(facts: Facts) -> list[int | None] | None:
    """For each torch device (torch's order), nvidia-smi's index of the same card; None where the probe cannot
    tell. Matched by UUID, else PCI address, else by name where every name is different."""
    gpus, devs = facts.gpus or [], facts.torch.devices
    if len(gpus) < 2 or len(devs) < 2:
        return None
    out: list[int | None] = []
    by_name = {g.name: g for g in gpus} if len({g.name for g in gpus}) == len(gpus) else {}
    for d in devs:
        hit = None
        for g in gpus:
            if d.get("uuid") and _uuid(g.uuid) == _uuid(d["uuid"]):
                hit = g
                break
            if d.get("pci_bus_id") and _pci(g.pci_bus_id) and _pci(g.pci_bus_id) == _pci(d["pci_bus_id"]):
                hit = g
                break
        if hit is None and not any(d.get(k) for k in ("uuid", "pci_bus_id")):
            hit = by_name.get(d.get("name"))
        out.append(None if hit is None else (hit.index if hit.index is not None else gpus.index(hit)))
    return out


def order_rules(facts: Facts):
    gpus = facts.gpus or []
    env = facts.env.vars
    if len(gpus) < 2 or len({_key(g) for g in gpus}) < 2 or env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return []
    mapping = torch_to_smi(facts)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    ev = [f"nvidia-smi GPU {g.index}: {g.name} ({g.pci_bus_id or 'bus ?'})" for g in gpus]
    ev.append("CUDA_DEVICE_ORDER=" + env.get("CUDA_DEVICE_ORDER", "(unset: FASTEST_FIRST)"))
    title = None
    identity = bool(mapping) and mapping == list(range(len(mapping)))
    if identity and not visible and len(mapping) == len(gpus):
        return []  # on this box CUDA's fastest-first order happens to be the PCI order: nothing to confuse
    if mapping and all(m is not None for m in mapping) and not identity:
        by_index = {g.index: g for g in gpus}
        pairs = [f"cuda:{i} is nvidia-smi's GPU {m} ({short(by_index[m].name if m in by_index else None)})"
                 for i, m in enumerate(mapping)]
        ev += [f"torch {p}" for p in pairs]
        first = next((k for k, m in enumerate(mapping) if m != k), 0)
        title = (f"CUDA numbers these GPUs differently from nvidia-smi: torch's {pairs[first]}"
                 + ("" if not visible else f" (with CUDA_VISIBLE_DEVICES={visible})"))
    else:
        fastest = None
        if facts.torch.devices:
            fastest = facts.torch.devices[0].get("name")
        title = ("CUDA numbers these different GPUs fastest first, nvidia-smi by PCI bus: CUDA_VISIBLE_DEVICES=0 "
                 "may not be nvidia-smi's GPU 0" + (f" (torch's cuda:0 is {short(fastest)})" if fastest else ""))
    return [make("device-order", title=title, evidence=ev, fixes=[Fix(
        title="Number GPUs by PCI bus, as nvidia-smi does (tunedoc train sets it for its runs; torchrun, accelerate "
              "and your scripts need it in the shell)",
        commands=[set_env(facts, "CUDA_DEVICE_ORDER", "PCI_BUS_ID")], shell=shell_of(facts), applicable=True)])]


RULES = [nccl_rules, p2p_rules, link_rules, mixed_rules, order_rules]
