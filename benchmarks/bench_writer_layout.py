"""Thread layout of the llama.cpp writer: one process with every core, or one
single-thread process per core (what ``stepdiff datagen ... --workers N`` runs).

    python benchmarks/bench_writer_layout.py [--llm qwen2.5-coder-1.5b-instruct] [--prompts 3]

Each layout writes replies to the same ``qa_v2`` prompts (two SynthKitchen-like step
descriptions; greedy, at most 200 new tokens); the layouts run one after the other in
one run, twice, alternating their order, and are reported as generated tokens per
second summed over the processes (prompt processing included) and its ratio to the
one-process layout. Needs the ``llamacpp`` extra and the model (``make llamacpp
llm-qwen-1.5b``); otherwise it says so and stops.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

DESCRIPTIONS = [
    (
        "A person stirs yellow custard in circles with a wooden spoon in a dark steel pan, "
        "slowly, until it is thick; served on a round white plate with mint",
        "A person beats orange soup back and forth with a whisk in a red ceramic pot, "
        "quickly, until it is smooth; served in a bowl with parsley",
    ),
    (
        "A person chops green peppers with a chef's knife on a wooden board, steadily; "
        "served on a square plate with basil",
        "A person chops red tomatoes with a cleaver on a plastic board, quickly, skipping "
        "the rinse; served on a round plate with no garnish",
    ),
]


def _one_process(llm: str, threads: int, prompts: int) -> dict[str, float]:
    """Generate ``prompts`` replies in this process; tokens and seconds."""
    from stepdiff.datagen.prompting import load_prompt, render
    from stepdiff.llm.textgen import LlamaCppGenerator

    generator = LlamaCppGenerator(llm, n_threads=threads)
    prompt = load_prompt("qa")
    tokens, started = 0, time.perf_counter()
    for i in range(prompts):
        one, two = DESCRIPTIONS[i % len(DESCRIPTIONS)]
        messages = render(prompt, description1=f"{one} (take {i})", description2=two)
        result = generator._llm.create_chat_completion(  # the usage counts are needed here
            messages=messages, max_tokens=200, temperature=0.0, seed=0
        )
        tokens += result["usage"]["completion_tokens"]
    return {"tokens": tokens, "seconds": time.perf_counter() - started}


def _layout(llm: str, processes: int, threads: int, prompts: int) -> float:
    """Generated tokens/s summed over ``processes`` concurrent processes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", str(threads), "--llm", llm]
    command += ["--prompts", str(prompts)]
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    results = [json.loads(child.communicate()[0]) for child in children]
    return sum(r["tokens"] / r["seconds"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_one_process(args.llm, args.child, args.prompts)))
        return
    if importlib.util.find_spec("llama_cpp") is None:
        sys.exit("llama-cpp-python is not installed: make llamacpp")
    cores = os.cpu_count() or 1
    layouts = {
        f"1 process x {cores} threads": (1, cores),
        f"{cores} processes x 1 thread": (cores, 1),
    }
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for round_ in range(2):
        order = list(layouts) if round_ == 0 else list(reversed(layouts))
        for name in order:
            rates[name].append(_layout(args.llm, *layouts[name], args.prompts))
    base = max(rates[next(iter(layouts))])
    print(f"{args.llm}, {args.prompts} qa_v2 prompts per process, best of 2 rounds")
    print("| layout | generated tokens/s (all processes) | ratio |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {max(values):.2f} | {max(values) / base:.2f}x |")


if __name__ == "__main__":
    main()
