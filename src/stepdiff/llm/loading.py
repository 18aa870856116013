"""Load the frozen LLM from a Hugging Face id, a local folder, a GGUF file, or a short alias.

GGUF files are de-quantised to fp32 by transformers once (slow: tens of seconds) and the
result is cached as a plain safetensors folder, which later loads in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from stepdiff.errors import ConfigError, ModelLoadError, first_line
from stepdiff.hf_quiet import quiet_transformers
from stepdiff.llm.aliases import DEFAULT_LLM, PACKAGED_GGUF
from stepdiff.llm.memory import check_fits, gguf_parameters, safetensors_parameters
from stepdiff.llm.part_models import PART_MODELS
from stepdiff.llm.parts import resolve_part_model
from stepdiff.llm.tiny import build_tiny_llm
from stepdiff.paths import cache_root, package_file
from stepdiff.specs import parse_int_options

TINY_PREFIX = "tiny"
TINY_OPTIONS = ("hidden_size", "num_layers", "seed")


@dataclass
class FrozenLLM:
    """A causal LM with all weights frozen, its tokenizer, and the name it was loaded by."""

    model: PreTrainedModel
    tokenizer: object  # a transformers PreTrainedTokenizerBase
    name: str

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])


def packaged_gguf_path(alias: str) -> Path:
    """The GGUF file that a pip package ships for ``alias``."""
    package, filename = PACKAGED_GGUF[alias]
    return package_file(package, filename, f"LLM {alias!r}")


SOURCE_FILE = "source.json"  # which GGUF file a de-quantised folder was made from


def _gguf_identity(gguf_file: Path) -> dict[str, object]:
    stat = gguf_file.stat()
    return {"gguf": str(gguf_file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def gguf_cache_dir(gguf_file: Path) -> Path:
    """Where a GGUF file de-quantised for transformers is kept (by the file's identity)."""
    identity = _gguf_identity(gguf_file)
    text = f"{identity['gguf']}|{identity['size']}|{identity['mtime_ns']}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return cache_root() / "llm" / f"{gguf_file.stem}-{digest}"


def _remove_stale_copies(gguf_file: Path, keep: Path) -> None:
    """Delete de-quantised folders made from an earlier version of ``gguf_file``, or from
    a GGUF file that no longer exists: each reinstall of a package gives its GGUF a new
    mtime, and every folder holds a few hundred MB."""
    for folder in keep.parent.glob(f"{gguf_file.stem}-*"):
        if folder == keep or not folder.is_dir():
            continue
        try:
            source = json.loads((folder / SOURCE_FILE).read_text())
            made_from = Path(source["gguf"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # made by an older version or by hand: its source is unknown
        current = _gguf_identity(made_from) if made_from.is_file() else None
        if current != source:
            shutil.rmtree(folder, ignore_errors=True)


def _dequantise_gguf_to_folder(gguf_file: Path, target: Path) -> None:
    """De-quantise ``gguf_file`` and write model + tokenizer to ``target`` atomically."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
        )
    except Exception as error:  # transformers raises many types for unreadable files
        raise ModelLoadError(f"{gguf_file}: cannot read GGUF model ({first_line(error)})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # save_pretrained refuses GGUF-loaded models, so write config and weights directly;
        # save_model handles the tied input/output embeddings that save_file rejects.
        from safetensors.torch import save_model

        model.config.save_pretrained(staging)
        model.generation_config.save_pretrained(staging)
        save_model(model, str(staging / "model.safetensors"))
        tokenizer.save_pretrained(staging)
        (staging / SOURCE_FILE).write_text(json.dumps(_gguf_identity(gguf_file)))
        os.replace(staging, target)
    except OSError:
        # Another process finished the same folder first: keep theirs.
        if not (target / "model.safetensors").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_stale_copies(gguf_file, target)


LLM_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def llm_dtype(name: str) -> torch.dtype:
    """The torch dtype for a config's ``llm_dtype`` name, with a clear error."""
    if name not in LLM_DTYPES:
        raise ConfigError(f"llm_dtype {name!r}: expected one of {', '.join(LLM_DTYPES)}")
    return LLM_DTYPES[name]


def _load_folder_or_id(
    source: str | Path, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, object]:
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except Exception as error:
        raise ModelLoadError(f"LLM {str(source)!r}: cannot load ({first_line(error)})") from error
    return model, tokenizer


def _gguf_parameters(gguf_file: Path) -> int | None:
    """The GGUF file's parameter count; None for a file gguf cannot read, which the
    de-quantiser then reports, naming it."""
    try:
        return gguf_parameters(gguf_file)
    except Exception:  # gguf raises many types for unreadable files
        return None


def _check_folder_fits(spec: str, folder: Path, torch_dtype: torch.dtype, dtype: str) -> None:
    """The memory check for a folder's safetensors weights loaded in ``torch_dtype``."""
    try:
        parameters = sum(safetensors_parameters(f) for f in folder.glob("*.safetensors"))
    except (OSError, ValueError, KeyError, struct.error):
        return  # transformers reports an unreadable file itself, naming it
    check_fits(spec, parameters, torch_dtype.itemsize, dtype)


def resolve_gguf(spec: str) -> Path | None:
    """The GGUF file an LLM spec names (alias, part-packaged model name or ``.gguf``
    path), or None for other specs. A part-packaged model's sha256 is checked first."""
    if spec in PACKAGED_GGUF:
        return packaged_gguf_path(spec)
    if spec in PART_MODELS:
        return resolve_part_model(spec)
    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"LLM GGUF file {spec!r} not found")
        return path
    return None


def load_frozen_llm(spec: str = DEFAULT_LLM, dtype: str = "float32") -> FrozenLLM:
    """Load an LLM by alias (``smollm2-135m-instruct``, ``tiny``), part-packaged model name
    (``qwen2.5-coder-0.5b-instruct``: see :mod:`stepdiff.llm.parts`), GGUF file, folder or hub id,
    with weights in ``dtype`` (``float32``, ``bfloat16`` or ``float16``).

    The model is put in eval mode with every parameter frozen.
    """
    torch_dtype = llm_dtype(dtype)
    if spec == TINY_PREFIX or spec.startswith(TINY_PREFIX + ":"):
        model, tokenizer = build_tiny_llm(**parse_int_options(spec, TINY_OPTIONS, "LLM"))
    elif (gguf_file := resolve_gguf(spec)) is not None:
        folder = gguf_cache_dir(gguf_file)
        if not (folder / "model.safetensors").is_file():
            # De-quantising builds the whole model in fp32 first.
            if (parameters := _gguf_parameters(gguf_file)) is not None:
                check_fits(spec, parameters, 4, "float32")
            _dequantise_gguf_to_folder(gguf_file, folder)
        _check_folder_fits(spec, folder, torch_dtype, dtype)
        model, tokenizer = _load_folder_or_id(folder, torch_dtype)
    else:
        if Path(spec).is_dir():
            _check_folder_fits(spec, Path(spec), torch_dtype, dtype)
        model, tokenizer = _load_folder_or_id(spec, torch_dtype)
    model.to(torch_dtype)  # the tiny built-in LLM is built in fp32
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.requires_grad_(False)
    model.eval()
    return FrozenLLM(model=model, tokenizer=tokenizer, name=spec)
