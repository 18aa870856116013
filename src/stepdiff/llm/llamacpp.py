"""Import llama-cpp-python (an optional extra) so that it runs well beside other work."""

from __future__ import annotations

import os
from types import ModuleType

from stepdiff.errors import ConfigError


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
