"""Stand-alone probe run by the *target* interpreter: torch, then bitsandbytes.

Prints one JSON line per part ({"part": "torch", ...}, {"part": "multigpu", ...} (NCCL's version, peer access),
then {"part": "bnb", ...}) and flushes after each, so a crash in NCCL or bitsandbytes still leaves the torch facts.
Must not import tunedoc. Exceptions are caught and reported;
a segfault or hang is seen by the parent through the exit code or its timeout.
"""
import io
import json
import sys
import traceback
import warnings


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def last_line(exc):
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[-1] if text else repr(exc)


def probe_torch():
    out = {"part": "torch", "installed": True}
    caught = io.StringIO()
    real_stderr = sys.stderr
    try:
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            sys.stderr = caught
            try:
                import torch
            finally:
                sys.stderr = real_stderr
    except ModuleNotFoundError as e:
        if getattr(e, "name", None) == "torch":
            return {"part": "torch", "installed": False, "import_ok": False, "import_error": last_line(e),
                    "import_error_kind": "module_not_found"}, None
        out.update(import_ok=False, import_error=last_line(e), import_error_kind="module_not_found",
                   traceback=traceback.format_exc()[-3000:])
        return out, None
    except OSError as e:
        out.update(import_ok=False, import_error=last_line(e), import_error_kind="dll",
                   traceback=traceback.format_exc()[-3000:])
        return out, None
    except BaseException as e:  # noqa: BLE001 - anything torch raises on import is a finding
        out.update(import_ok=False, import_error=last_line(e), import_error_kind="other",
                   traceback=traceback.format_exc()[-3000:])
        return out, None
    out["warnings"] = [str(w.message)[:500] for w in ws] + [l for l in caught.getvalue().splitlines() if l.strip()][:20]
    out["import_ok"] = True
    out["version"] = getattr(torch, "__version__", None)
    out["file"] = getattr(torch, "__file__", None)
    v = getattr(torch, "version", None)
    out["cuda"] = getattr(v, "cuda", None)
    out["hip"] = getattr(v, "hip", None)
    try:
        out["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    except Exception:
        out["cudnn"] = None
    try:
        out["arch_list"] = list(torch.cuda.get_arch_list())
    except Exception:
        out["arch_list"] = None
    try:
        out["cxx11abi"] = bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    except Exception:
        pass
    try:
        import torch.distributed as dist

        out["distributed_available"] = bool(dist.is_available())
        out["nccl_available"] = bool(dist.is_available() and dist.is_nccl_available())
    except Exception:
        pass
    if out.get("distributed_available"):
        # torch.distributed's TCPStore uses libuv by default since 2.4; Windows wheels long shipped without it
        # ("use_libuv was requested but PyTorch was built without libuv support"). Ask for it on a local port.
        try:
            import datetime

            store = dist.TCPStore("127.0.0.1", 0, 1, True, wait_for_workers=False,
                                  timeout=datetime.timedelta(seconds=3), use_libuv=True)
            out["libuv_available"] = bool(getattr(store, "libuvBackend", False))
            del store
        except Exception as e:  # noqa: BLE001
            out["libuv_available"] = False if "libuv" in str(e).lower() else None
    ws2 = []
    with warnings.catch_warnings(record=True) as ws2:
        warnings.simplefilter("always")
        try:
            out["cuda_available"] = bool(torch.cuda.is_available())
            out["device_count"] = torch.cuda.device_count() if out["cuda_available"] else 0
        except Exception as e:
            out["cuda_available"] = False
            out["cuda_error"] = last_line(e)
        devices = []
        if out.get("cuda_available"):
            for i in range(out["device_count"]):
                try:
                    p = torch.cuda.get_device_properties(i)
                    devices.append({"name": p.name, "capability": f"{p.major}.{p.minor}",
                                    "total_mb": int(p.total_memory // (1024 * 1024)), **device_ids(p)})
                except Exception as e:
                    devices.append({"error": last_line(e)})
            out["devices"] = devices
            try:
                x = torch.ones(8, device="cuda")
                y = (x * 2).sum().item()
                out["cuda_op_ok"] = y == 16.0
            except Exception as e:
                out["cuda_op_ok"] = False
                out["cuda_op_error"] = last_line(e)
            caps = [d.get("capability") for d in devices if d.get("capability")]
            out["bf16_supported"] = bool(caps) and all(float(c) >= 8.0 for c in caps)
    out["warnings"] += [str(w.message)[:800] for w in ws2]
    return out, torch


def probe_multigpu(torch, torch_out):
    """NCCL's version and peer access between the GPUs, as a part of its own after the torch part: a native crash
    in NCCL or the driver kills the child here, with torch's facts already printed."""
    out = {"part": "multigpu", **nccl_version(torch, torch_out)}
    if (torch_out.get("device_count") or 0) > 1:
        out["peer_access"] = peer_access(torch, torch_out["device_count"])
    return out


def nccl_version(torch, facts):
    """{"nccl_version": "2.21.5"} from torch.cuda.nccl.version(), or {"nccl_error": why} where a CUDA build on Linux
    should have NCCL and cannot say its version; {} where there is nothing to ask (CPU build, Windows, macOS)."""
    if not getattr(getattr(torch, "version", None), "cuda", None) or not sys.platform.startswith("linux"):
        return {}
    try:
        import torch.cuda.nccl as nccl

        v = nccl.version()
        if isinstance(v, tuple):
            return {"nccl_version": ".".join(str(x) for x in v)}
        v = int(v)  # torch < 1.11: one number, 2708 -> 2.7.8
        return {"nccl_version": f"{v // 1000}.{v % 1000 // 100}.{v % 100}"}
    except BaseException as e:  # noqa: BLE001 - a torch without NCCL raises anything from ImportError to RuntimeError
        return {"nccl_error": last_line(e)}


def device_ids(props):
    """What ties torch's device to nvidia-smi's GPU: the UUID and the PCI address (newer torch releases only)."""
    out = {}
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        out["uuid"] = str(uuid)
    bus = getattr(props, "pci_bus_id", None)
    if isinstance(bus, int):
        out["pci_bus_id"] = "%08X:%02X:%02X.0" % (getattr(props, "pci_domain_id", 0) or 0, bus,
                                                 getattr(props, "pci_device_id", 0) or 0)
    return out


def peer_access(torch, n):
    """can_device_access_peer for every ordered pair (None on the diagonal and where the call failed)."""
    matrix = []
    for i in range(min(n, 16)):
        row = []
        for j in range(min(n, 16)):
            if i == j:
                row.append(None)
                continue
            try:
                row.append(bool(torch.cuda.can_device_access_peer(i, j)))
            except Exception:
                row.append(None)
        matrix.append(row)
    return matrix


def _no_compile(model=None, **kwargs):
    return model if model is not None else (lambda fn: fn)


def probe_bnb(torch):
    out = {"part": "bnb"}
    caught = io.StringIO()
    real_stdout, real_stderr = sys.stdout, sys.stderr
    # bitsandbytes wraps some kernels in torch.compile at import time, which loads TorchDynamo and Inductor
    # (about 2 s, more than torch itself). The probe never runs those kernels compiled, and bitsandbytes falls
    # back to the plain function when compiling fails anyway, so compiling is made a no-op during the import.
    real_compile = getattr(torch, "compile", None) if torch is not None else None
    if real_compile is not None:
        torch.compile = _no_compile
    try:
        sys.stdout = sys.stderr = caught
        try:
            import bitsandbytes as bnb
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
            if real_compile is not None:
                torch.compile = real_compile
    except ModuleNotFoundError as e:
        if getattr(e, "name", None) == "bitsandbytes":
            return {"part": "bnb", "installed": False, "import_ok": False}
        return {"part": "bnb", "installed": True, "import_ok": False, "import_error": last_line(e),
                "warnings": caught.getvalue().splitlines()[-20:]}
    except BaseException as e:  # noqa: BLE001
        return {"part": "bnb", "installed": True, "import_ok": False, "import_error": last_line(e),
                "warnings": caught.getvalue().splitlines()[-20:]}
    out.update(installed=True, import_ok=True, version=getattr(bnb, "__version__", None))
    out["warnings"] = [l for l in caught.getvalue().splitlines() if l.strip()][-20:]
    try:
        from bitsandbytes import cextension

        lib = getattr(cextension, "lib", None)
        cls = type(lib).__name__ if lib is not None else None
        path = None
        for attr in ("_lib", "lib"):
            handle = getattr(lib, attr, None)
            path = getattr(handle, "_name", None) or path
        out["native_lib"] = (path or "").replace("\\", "/").rsplit("/", 1)[-1] or None
        backend = getattr(cextension, "BNB_BACKEND", None)
        if lib is None or "ErrorHandler" in (cls or ""):
            out["lib_kind"] = "none"
        elif out["native_lib"] and "cpu" in out["native_lib"].lower():
            out["lib_kind"] = "cpu"
        elif out["native_lib"] and ("cuda" in out["native_lib"].lower() or "rocm" in out["native_lib"].lower()):
            out["lib_kind"] = "cuda"
        elif backend:
            out["lib_kind"] = "cpu" if str(backend).upper() == "CPU" else "cuda"
        else:
            out["lib_kind"] = "other"
    except Exception as e:
        out["lib_error"] = last_line(e)
    if torch is not None and out.get("import_ok"):
        try:
            if torch.cuda.is_available():
                import bitsandbytes.functional as F

                w = torch.randn(64, 64, device="cuda", dtype=torch.float16)
                q, state = F.quantize_4bit(w, quant_type="nf4")
                back = F.dequantize_4bit(q, state)
                err = (back.float() - w.float()).abs().mean().item()
                out["quant_ok"] = err < 0.2
                if not out["quant_ok"]:
                    out["quant_error"] = f"4-bit round trip error {err:.3f} is too large"
        except Exception as e:  # noqa: BLE001
            out["quant_ok"] = False
            out["quant_error"] = last_line(e)
    return out


def main():
    parts = sys.argv[1:] or ["torch", "bnb"]
    torch_out, torch = probe_torch()
    emit(torch_out)
    if torch is not None:
        emit(probe_multigpu(torch, torch_out))
    if "bnb" in parts:
        if torch_out.get("import_ok"):
            emit(probe_bnb(torch))
        else:
            # bitsandbytes imports torch: report whether it is installed, not a second torch failure
            try:
                from importlib import metadata

                version = metadata.version("bitsandbytes")
                emit({"part": "bnb", "installed": True, "version": version, "import_ok": None,
                      "import_error": "not tried: torch does not import"})
            except Exception:
                emit({"part": "bnb", "installed": False, "import_ok": False})


if __name__ == "__main__":
    main()
