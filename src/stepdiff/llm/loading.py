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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from stepdiff.errors import ConfigError, ModelLoadError, first_line
from stepdiff.hf_quiet import quiet_transformers
from stepdiff.llm.aliases import DEFAULT_LLM, PACKAGED_GGUF
from stepdiff.llm.folder_tokenizer import FolderTokenizer
from stepdiff.llm.memory import (
    check_fits,
    gguf_parameters,
    safetensors_header,
    safetensors_parameters,
)
from stepdiff.llm.part_models import PART_MODELS
from stepdiff.llm.parts import resolve_part_model
from stepdiff.paths import cache_root, package_file
from stepdiff.specs import parse_int_options

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TINY_PREFIX = "tiny"
TINY_OPTIONS = ("hidden_size", "num_layers", "seed")


class FrozenLLM:
    """A causal LM with all weights frozen, its tokenizer, and the name it was loaded by.

    A deferred one (``load_frozen_llm(..., defer=True)``) holds the tokenizer and the
    input embedding table only, and loads its weights at the first use of ``model``.
    Answers generated through llama.cpp never use them: ``ask --llamacpp`` then neither
    imports transformers' model code (about 4 s) nor loads GBs of fp32 weights.
    """

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        tokenizer: object = None,  # a transformers PreTrainedTokenizerBase
        name: str = "",
        *,
        load: Callable[[], PreTrainedModel] | None = None,
        input_embeddings: torch.Tensor | None = None,  # (V, H), with ``load``
    ) -> None:
        if (model is None) == (load is None):
            raise ValueError("a FrozenLLM needs either its model or a way to load it")
        self._model = model
        self._load = load
        self._input_embeddings = input_embeddings
        self.tokenizer = tokenizer
        self.name = name

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> PreTrainedModel:
        if self._model is None:
            assert self._load is not None
            self._model = self._load()
            self._load, self._input_embeddings = None, None
        return self._model

    def input_embeddings(self) -> torch.Tensor:
        """The input embedding table (V, H), read without loading a deferred model."""
        if self._model is None and self._input_embeddings is not None:
            return self._input_embeddings
        return self.model.get_input_embeddings().weight

    @property
    def hidden_size(self) -> int:
        return int(self.input_embeddings().shape[1])


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

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


def _load_tokenizer(source: str | Path) -> object:
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(source)
    except Exception as error:
        raise ModelLoadError(f"LLM {str(source)!r}: cannot load ({first_line(error)})") from error


def _read_folder_tokenizer(folder: Path) -> FolderTokenizer:
    try:
        return FolderTokenizer(folder)
    except Exception as error:  # tokenizers and json raise many types for broken files
        raise ModelLoadError(
            f"LLM {str(folder)!r}: cannot read its tokenizer ({first_line(error)})"
        ) from error


def _load_model(source: str | Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    try:
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except Exception as error:
        raise ModelLoadError(f"LLM {str(source)!r}: cannot load ({first_line(error)})") from error


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


def names_gguf(spec: str) -> bool:
    """Whether an LLM spec names a GGUF file (see :func:`resolve_gguf`), without touching it."""
    return spec in PACKAGED_GGUF or spec in PART_MODELS or Path(spec).suffix == ".gguf"


def resolve_gguf(spec: str) -> Path | None:
    """The GGUF file an LLM spec names (alias, part-packaged model name or ``.gguf``
    path), or None for other specs. A part-packaged model's sha256 is checked first."""
    if not names_gguf(spec):
        return None
    if spec in PACKAGED_GGUF:
        return packaged_gguf_path(spec)
    if spec in PART_MODELS:
        return resolve_part_model(spec)
    if not Path(spec).is_file():
        raise ModelLoadError(f"LLM GGUF file {spec!r} not found")
    return Path(spec)


def load_frozen_llm(
    spec: str = DEFAULT_LLM, dtype: str = "float32", *, defer: bool = False
) -> FrozenLLM:
    """Load an LLM by alias (``smollm2-135m-instruct``, ``tiny``), part-packaged model name
    (``qwen2.5-coder-0.5b-instruct``: see :mod:`stepdiff.llm.parts`), GGUF file, folder or hub id,
    with weights in ``dtype`` (``float32``, ``bfloat16`` or ``float16``).

    The model is put in eval mode with every parameter frozen. ``defer``: for a GGUF file
    or a folder of safetensors weights, load only the tokenizer and the input embeddings
    now, the weights at the first use of ``FrozenLLM.model``.
    """
    torch_dtype = llm_dtype(dtype)
    if spec == TINY_PREFIX or spec.startswith(TINY_PREFIX + ":"):
        from stepdiff.llm.tiny import build_tiny_llm

        model, tokenizer = build_tiny_llm(**parse_int_options(spec, TINY_OPTIONS, "LLM"))
        return FrozenLLM(_frozen(model, torch_dtype), _padded(tokenizer), spec)
    folder = Path(spec) if Path(spec).is_dir() else None
    if (gguf_file := resolve_gguf(spec)) is not None:
        folder = gguf_cache_dir(gguf_file)
        if not (folder / "model.safetensors").is_file():
            # De-quantising builds the whole model in fp32 first.
            if (parameters := _gguf_parameters(gguf_file)) is not None:
                check_fits(spec, parameters, 4, "float32")
            _dequantise_gguf_to_folder(gguf_file, folder)

    source = folder or spec

    def load() -> PreTrainedModel:
        if folder is not None:
            _check_folder_fits(spec, folder, torch_dtype, dtype)
        return _frozen(_load_model(source, torch_dtype), torch_dtype)

    if defer and folder is not None:
        embeddings = _stored_input_embeddings(folder, torch_dtype)
        if embeddings is not None:
            # A folder de-quantised from a GGUF holds a tokenizer.json that transformers
            # wrote: read without transformers, it gives the same tokens 4 s sooner.
            if gguf_file is not None and FolderTokenizer.can_read(folder):
                tokenizer = _padded(_read_folder_tokenizer(folder))
            else:
                tokenizer = _padded(_load_tokenizer(source))
            return FrozenLLM(tokenizer=tokenizer, name=spec, load=load, input_embeddings=embeddings)
    tokenizer = _padded(_load_tokenizer(source))
    return FrozenLLM(load(), tokenizer, spec)


def _frozen(model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    model.to(dtype)  # the tiny built-in LLM is built in fp32
    model.requires_grad_(False)
    model.eval()
    return model


def _padded(tokenizer: object) -> object:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# The input embedding table's name in the safetensors of the Llama-like architectures a
# GGUF de-quantises to (Llama, Qwen2, Mistral, ...).
INPUT_EMBEDDINGS_SUFFIX = "embed_tokens.weight"


# safetensors dtypes a table may be mapped in (bf16 has no numpy type: mapped as int16).
MAPPABLE_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.int16}


def _stored_input_embeddings(folder: Path, dtype: torch.dtype) -> torch.Tensor | None:
    """The input embedding table (V, H) from a folder's safetensors alone, memory-mapped:
    only the rows used are read (the words head mixes a few hundred of them), not all
    0.5-1 GB. None where the table cannot be told apart (the whole model then loads)."""
    found = []
    try:
        for path in sorted(folder.glob("*.safetensors")):
            header, data_start = safetensors_header(path)
            found += [
                (path, data_start, entry)
                for name, entry in header.items()
                if name.endswith(INPUT_EMBEDDINGS_SUFFIX)
            ]
    except (OSError, ValueError, KeyError, struct.error):
        return None  # transformers reports an unreadable file when the model loads
    if len(found) != 1:
        return None
    path, data_start, entry = found[0]
    kind, shape = MAPPABLE_DTYPES.get(entry.get("dtype")), tuple(entry.get("shape", ()))
    if kind is None or len(shape) != 2:
        return None
    # Copy-on-write: a writable array for torch, and nothing is ever written back.
    rows = np.memmap(
        path, kind, mode="c", offset=data_start + entry["data_offsets"][0], shape=shape
    )
    table = torch.from_numpy(rows)
    if entry["dtype"] == "BF16":
        table = table.view(torch.bfloat16)
    return table if table.dtype == dtype else table.to(dtype)
