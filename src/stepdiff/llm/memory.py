"""Will an LLM fit in memory? Checked before loading, so that a machine short of memory
gets a one-line error that says what to do instead of the kernel's out-of-memory kill
(which leaves no message at all) halfway through a load.

The weights' size comes from file headers alone (safetensors' JSON header, GGUF's tensor
table), the free memory from the kernel: MemAvailable, capped by the cgroup's limit in a
container.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from stepdiff.errors import ModelLoadError

# Room beyond the weights: activations, the tokenizer, Python and torch themselves.
HEADROOM = 1.15
GIB = 1 << 30


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors file's header (tensor name -> dtype, shape, data_offsets) and the
    byte where its data starts (the offsets count from there)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def safetensors_parameters(path: Path) -> int:
    """The number of values in a safetensors file, read from its header alone."""
    return sum(math.prod(entry["shape"]) for entry in safetensors_header(path)[0].values())


def gguf_parameters(path: Path) -> int:
    """The number of values in a GGUF model's tensors (its tensor table is memory-mapped;
    no tensor is read)."""
    from gguf import GGUFReader

    return sum(int(tensor.n_elements) for tensor in GGUFReader(str(path)).tensors)


def available_bytes() -> int | None:
    """Memory a new allocation can get now: the kernel's MemAvailable, capped by a cgroup
    v2 limit; None where neither can be read (not Linux)."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max" and available is not None:
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_fits(name: str, parameters: int, bytes_per_value: int, dtype: str) -> None:
    """Raise a one-line :class:`ModelLoadError` when ``parameters`` values of
    ``bytes_per_value`` bytes (and headroom) exceed the memory available now."""
    needed = parameters * bytes_per_value * HEADROOM
    available = available_bytes()
    if available is None or needed <= available:
        return
    raise ModelLoadError(
        f"LLM {name!r} needs about {needed / GIB:.1f} GiB of memory in {dtype} and only "
        f"{available / GIB:.1f} GiB is available: close other programs, or choose a smaller "
        "LLM (--set llm=...)"
    )
