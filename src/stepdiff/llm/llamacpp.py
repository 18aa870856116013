"""Import llama-cpp-python (an optional extra) so that it runs well beside other work, and
load GGUF files through it with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from stepdiff.errors import ConfigError, ModelLoadError
from stepdiff.llm.memory import check_fits


def import_llama_cpp() -> ModuleType:
    """The ``llama_cpp`` module, or a one-line error naming the extra to install.

    llama.cpp's OpenMP worker threads busy-wait between operations by default. When any
    other process (or torch's own threads) wants the same cores, the spinning threads
    starve the working ones: on a busy 2-core machine a 50-token prompt took 9 s instead
    of 0.4 s. Passive waiting costs little when the machine is idle, so it is the default
    here unless the user set a policy.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(
            "llama.cpp needs llama-cpp-python: install stepdiff[llamacpp] "
            "(pip compiles llama.cpp, ~5 min on 2 cores)"
        ) from None
    return llama_cpp


def load_llama(path: str | Path, n_ctx: int, n_threads: int | None) -> Any:
    """A ``llama_cpp.Llama`` for the GGUF file ``path``, prompts and generation on
    ``n_threads`` threads; a file llama.cpp cannot read (truncated, corrupt, not a GGUF
    model) is a one-line :class:`ModelLoadError` instead of llama.cpp's traceback."""
    llama_cpp = import_llama_cpp()
    if Path(path).is_file():  # llama.cpp maps the whole file, in its own quantisation
        check_fits(str(path), Path(path).stat().st_size, 1, "its GGUF quantisation")
    try:
        # Prompts get the same thread count (n_threads_batch): by default llama-cpp-python
        # gives them every core, and on a busy machine OpenMP threads beyond the free cores
        # make prompt processing many times slower.
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    except ValueError as error:  # "Failed to load model from file: ..."
        raise ModelLoadError(
            f"{path}: llama.cpp cannot load this GGUF file (truncated, corrupt or not a "
            f"model); reinstall it ({error})"
        ) from None
