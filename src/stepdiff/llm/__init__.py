"""Frozen LLMs: loading (GGUF, Hugging Face ids, local folders), prompts with video slots,
scoring and decoding (transformers or llama.cpp), and the optional LLMs that ship in parts."""
