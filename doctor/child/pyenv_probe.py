"""Stand-alone probe run by the *target* interpreter: its packages and where they come from.

Prints one JSON object. Imports nothing heavy (importlib.metadata only), so it answers in ~100 ms even where
torch is broken. Must not import tunedoc: the target Python may not have it installed.
"""
import json
import os
import sys
import sysconfig


def main():
    out = {
        "executable": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "prefix": sys.prefix,
        "is_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "is_conda": os.path.exists(os.path.join(sys.prefix, "conda-meta")),
        "packages": {},
        "package_locations": {},
        "site": sysconfig.get_paths().get("purelib"),
    }
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        print(json.dumps(out))
        return
    watched = {"torch", "bitsandbytes", "transformers", "peft", "accelerate", "flash-attn", "flash_attn",
               "triton", "triton-windows", "deepspeed", "xformers", "unsloth", "trl", "datasets"}
    for dist in metadata.distributions():
        try:
            name = (dist.metadata["Name"] or "").strip()
        except Exception:
            continue
        if not name:
            continue
        key = name.lower().replace("_", "-")
        out["packages"].setdefault(key, dist.version)
        if key in watched or key.replace("-", "_") in watched:
            try:
                out["package_locations"][key] = str(dist.locate_file(""))
            except Exception:
                pass
    # Which interpreter does the `pip` on PATH install into? A different one is the classic
    # "I installed torch but Python cannot find it" (torch-env-mismatch).
    try:
        import shutil

        pip = shutil.which("pip")
        out["pip_on_path"] = pip
        if pip and not pip.lower().endswith(".exe"):
            with open(pip, "rb") as f:
                first = f.readline(300).decode("utf-8", "replace").strip()
            if first.startswith("#!"):
                words = first[2:].strip().split()
                if words and words[0].endswith("/env") and len(words) > 1:
                    words = [shutil.which(words[-1]) or words[-1]]
                if words and os.path.basename(words[0]).lower().startswith("python"):
                    out["pip_python"] = os.path.realpath(words[0]) if os.path.exists(words[0]) else words[0]
    except Exception:
        pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
