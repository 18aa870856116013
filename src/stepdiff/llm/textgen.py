"""Text-generation backends for data generation (step descriptions, QA pairs).

One small interface, :class:`TextGenerator`: chat prompts in, one reply string per prompt
out. Three backends serve it:

- :class:`TransformersGenerator`: any LLM that :func:`stepdiff.llm.loading.load_frozen_llm`
  loads (the packaged SmolLM2 by default, a GGUF file, a hub id or folder, ``tiny``).
- :class:`LlamaCppGenerator`: a GGUF file through llama-cpp-python (an optional extra;
  on CPU, for the default model, ~4.5x faster per generated token than transformers but
  ~2x slower on the prompt: ~2.6x faster in all for data-generation prompts).
- :class:`OpenAIHTTPGenerator`: any OpenAI-compatible server (vLLM, llama.cpp's server,
  TGI) over plain HTTP, e.g. a Llama-2-70B-chat as the paper used.

:func:`build_text_generator` picks one from a short spec string.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from stepdiff.errors import ConfigError, ModelLoadError, StepDiffError

if TYPE_CHECKING:
    import torch

Messages = list[dict[str, str]]  # [{"role": "system" | "user", "content": str}, ...]


class TextGenerationError(StepDiffError):
    """A text-generation backend failed to answer (HTTP error, malformed reply)."""


class PromptTooLongError(TextGenerationError):
    """A prompt that does not fit the model's context window: the item's fault, not the
    backend's, so a pipeline counts it and goes on (:func:`generate_each`)."""

    MESSAGE = "prompt longer than the LLM's context window"


def generate_each(
    generator: TextGenerator, prompts: Sequence[Messages], **options: Any
) -> list[str | PromptTooLongError]:
    """``generator.generate(prompts, **options)``, except that a prompt too long for the
    model's context gets its error in its place instead of failing the whole call
    (the call is split until the long prompts are found). Other errors propagate."""
    try:
        return list(generator.generate(prompts, **options))
    except PromptTooLongError as error:
        if len(prompts) == 1:
            return [error]
    middle = len(prompts) // 2
    return generate_each(generator, prompts[:middle], **options) + generate_each(
        generator, prompts[middle:], **options
    )


@runtime_checkable
class TextGenerator(Protocol):
    """Chat prompts in, one reply per prompt out."""

    name: str

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """One reply per prompt, in order. ``temperature == 0`` means greedy decoding;
        otherwise sampling that ``seed`` makes reproducible."""
        ...


# --- transformers -----------------------------------------------------------------------


def format_chat(tokenizer: Any, messages: Messages) -> str:
    """``messages`` as prompt text ending where the assistant's reply starts.

    Uses the tokenizer's chat template when it has one; templates that reject a system
    role (Gemma, Mistral's older ones) get the system text folded into the first user
    turn. Tokenizers without a template get a plain "System/User/Assistant" layout.
    """
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # jinja2 TemplateError raised by the template itself
            folded = _fold_system(messages)
            if folded == messages:
                raise
            return tokenizer.apply_chat_template(folded, tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def _fold_system(messages: Messages) -> Messages:
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = "\n\n".join([*system, rest[0]["content"]])
    return rest


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """Every id that ends a reply: the tokenizer's eos and the model's (often a list)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def _seeded_sampler(temperature: float, generator: torch.Generator) -> Any:
    """A logits processor that samples the next token with our own torch.Generator and
    leaves only that token finite, so ``generate``'s greedy step picks it. HF's own
    sampling draws from the global RNG, which would make results depend on whatever ran
    before."""
    import torch
    from transformers import LogitsProcessor

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(scores.float() / temperature, dim=-1)  # (B, V)
            choice = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            return torch.full_like(scores, float("-inf")).scatter_(1, choice, 0.0)

    return SeededSampler()


class TransformersGenerator:
    """Generation with a transformers causal LM loaded by ``load_frozen_llm(spec)``.

    Prompts run in batches of ``batch_size``, left-padded so every row's reply starts at
    the same position; each reply stops at an end-of-sequence token.
    """

    def __init__(self, spec: str = "smollm2-135m-instruct", batch_size: int = 8) -> None:
        # Imported here so the HTTP backend does not pay for loading torch/transformers.
        from stepdiff.llm.loading import load_frozen_llm

        if batch_size < 1:
            raise ConfigError(f"batch_size {batch_size}: must be at least 1")
        self.llm = load_frozen_llm(spec)
        self.name = f"hf:{spec}"
        self.batch_size = batch_size
        self._eos = _eos_ids(self.llm.tokenizer, self.llm.model)
        # Chat templates write their own BOS into the text; plain layouts need the
        # tokenizer to add it.
        self._add_special = not getattr(self.llm.tokenizer, "chat_template", None)

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        import torch

        if temperature < 0:
            raise ConfigError(f"temperature {temperature}: must be >= 0")
        device = self.llm.model.device
        # One generator for the whole call: batch k continues the stream of batch k-1,
        # so a call is reproducible for a given seed and batch size.
        rng = torch.Generator(device=device).manual_seed(seed)
        replies: list[str] = []
        for first in range(0, len(prompts), self.batch_size):
            batch = prompts[first : first + self.batch_size]
            replies.extend(self._generate_batch(batch, max_new_tokens, temperature, rng))
        return replies

    def _generate_batch(
        self,
        batch: Sequence[Messages],
        max_new_tokens: int,
        temperature: float,
        rng: torch.Generator,
    ) -> list[str]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        tokenizer, model = self.llm.tokenizer, self.llm.model
        texts = [format_chat(tokenizer, messages) for messages in batch]
        inputs = tokenizer(
            texts,
            padding=True,
            padding_side="left",
            add_special_tokens=self._add_special,
            return_tensors="pt",
        ).to(model.device)  # input_ids, attention_mask: (B, L)
        context = getattr(model.config, "max_position_embeddings", None)
        if context and inputs["input_ids"].shape[1] + max_new_tokens > context:
            raise PromptTooLongError(PromptTooLongError.MESSAGE)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=self._eos,
            pad_token_id=tokenizer.pad_token_id,
        )
        processors = LogitsProcessorList(
            [_seeded_sampler(temperature, rng)] if temperature > 0 else []
        )
        with torch.no_grad():
            output = model.generate(
                **inputs, generation_config=config, logits_processor=processors
            )  # (B, L + new)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]  # (B, new)
        return [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


# --- llama.cpp --------------------------------------------------------------------------


class LlamaCppGenerator:
    """Generation through llama-cpp-python from a GGUF file (or a packaged or
    part-packaged model name, e.g. ``qwen2.5-coder-0.5b-instruct``).

    ``n_threads`` sets the threads for both prompt processing and generation; None takes
    torch's thread count, as the transformers backend does (llama-cpp-python alone would
    generate on half the cores: 75 against 107 tokens/s on a 2-core machine).
    """

    # Prompts run one by one, reusing the previous prompt's KV cache for a shared start.
    one_prompt_at_a_time = True

    def __init__(self, gguf_path: str, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        from stepdiff.llm.llamacpp import load_llama
        from stepdiff.llm.loading import resolve_gguf

        path = resolve_gguf(gguf_path) or Path(gguf_path)
        if not path.is_file():
            raise ModelLoadError(f"LLM GGUF file {str(path)!r} not found")
        self.name = f"llamacpp:{gguf_path}"
        if n_threads is None:
            import torch  # the transformers backend's thread count

            n_threads = torch.get_num_threads()
        self._llm = load_llama(path, n_ctx, n_threads)

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        replies = []
        for messages in prompts:
            # temperature 0 makes llama.cpp's sampler chain greedy; seed fixes the rest.
            try:
                result = self._llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_new_tokens,
                    temperature=temperature,
                    seed=seed,
                )
            except ValueError as error:  # "Requested tokens (N) exceed context window of M"
                if "context window" not in str(error):
                    raise
                raise PromptTooLongError(PromptTooLongError.MESSAGE) from error
            replies.append((result["choices"][0]["message"]["content"] or "").strip())
        return replies


# --- OpenAI-compatible HTTP -------------------------------------------------------------

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenAIHTTPGenerator:
    """Chat completions from an OpenAI-compatible server (``{base_url}/chat/completions``).

    Connection errors, timeouts, 429 and 5xx are retried ``max_retries`` times with
    exponential backoff (``backoff``, ``2 * backoff``, ...); any other HTTP error, or a
    reply without ``choices[0].message.content``, raises :class:`TextGenerationError`.
    Up to ``concurrency`` requests are in flight at once; replies keep prompt order.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120,
        max_retries: int = 3,
        concurrency: int = 4,
        backoff: float = 1.0,
    ) -> None:
        if not re.match(r"^https?://", base_url):
            raise ConfigError(f"base_url {base_url!r}: expected http://host:port/v1")
        if concurrency < 1 or max_retries < 0:
            raise ConfigError("concurrency must be >= 1 and max_retries >= 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff = backoff
        self.name = f"openai:{base_url}@{model}"

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        def one(messages: Messages) -> str:
            body = {
                "model": self.model,
                "messages": messages,
                "max_tokens": max_new_tokens,
                "temperature": temperature,
                "seed": seed,
            }
            return self._content(self._post(body))

        if len(prompts) <= 1 or self.concurrency == 1:
            return [one(messages) for messages in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(one, prompts))

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as error:
                detail = _one_line(error.read().decode("utf-8", errors="replace"))
                if error.code not in _RETRY_STATUS or attempt == self.max_retries:
                    raise TextGenerationError(
                        f"{self.url}: HTTP {error.code} {error.reason}: {detail}"
                    ) from None
                problem = f"HTTP {error.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                problem = _one_line(str(reason) or type(reason).__name__)
                if attempt == self.max_retries:
                    raise TextGenerationError(
                        f"{self.url}: no response after {attempt + 1} attempts ({problem})"
                    ) from None
            time.sleep(self.backoff * 2**attempt)
        try:
            return json.loads(raw)
        except ValueError:
            raise TextGenerationError(
                f"{self.url}: reply is not JSON: {_one_line(raw.decode('utf-8', 'replace'))}"
            ) from None

    def _content(self, reply: Any) -> str:
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise TextGenerationError(
                f"{self.url}: malformed reply, no choices[0].message.content: "
                f"{_one_line(json.dumps(reply))}"
            )
        return content.strip()


# --- specs ------------------------------------------------------------------------------

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!//)|^(https?)://")
SPEC_FORMS = "hf:<id|path|alias>, llamacpp:<gguf|alias>, openai:<base_url>@<model>, tiny"


def build_text_generator(spec: str) -> TextGenerator:
    """A backend from a spec string.

    - ``hf:<id-or-path>`` or a bare id, path or alias -> :class:`TransformersGenerator`
    - ``tiny`` (or ``tiny:hidden_size=32,...``) -> the tiny random transformers model
    - ``llamacpp:<gguf path or alias>`` -> :class:`LlamaCppGenerator`
    - ``openai:<base_url>@<model>`` -> :class:`OpenAIHTTPGenerator`, e.g.
      ``openai:http://127.0.0.1:8000/v1@meta-llama/Llama-2-70b-chat-hf``
    """
    match = _SCHEME.match(spec)
    scheme = (match.group(1) or match.group(2)).lower() if match else None
    rest = spec.partition(":")[2]
    if scheme is None or scheme == "tiny":
        return TransformersGenerator(spec)
    if scheme == "hf":
        return TransformersGenerator(rest)
    if scheme == "llamacpp":
        return LlamaCppGenerator(rest)
    if scheme == "openai":
        base_url, sep, model = rest.rpartition("@")
        if not sep or not base_url or not model:
            raise ConfigError(f"text generator {spec!r}: expected openai:<base_url>@<model>")
        return OpenAIHTTPGenerator(base_url, model)
    raise ConfigError(f"text generator {spec!r}: unknown scheme {scheme!r}; use {SPEC_FORMS}")
