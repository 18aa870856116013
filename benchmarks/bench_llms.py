"""What each frozen LLM costs: load time, memory, training and scoring speed.

    python benchmarks/bench_llms.py [--llms smollm2-135m-instruct qwen2.5-coder-0.5b-instruct
        qwen2.5-coder-1.5b-instruct] [--repeats 3] [--threads 2]

For each LLM, in a fresh process (so that one model's memory does not count for the
next):

- **load**: seconds for :func:`~stepdiff.llm.loading.load_frozen_llm` from the
  de-quantised cache (a first load de-quantises the GGUF once and caches it; that one is
  reported as ``first load`` when it happens in this run), and the process's peak RSS
  after it;
- **train**: samples/s of one projector training step's LLM part: forward and backward
  through the frozen LLM of B=4 rows shaped like a pair-QA sample (2 x 53 video embeddings
  as ``inputs_embeds`` with gradients, 48 prompt tokens, 16 answer tokens), the median of
  ``--repeats`` steps after a warm-up one; the peak RSS after them;
- **score**: rows/s of the same rows forward only (DiffMCQ's caption log-likelihood and
  DiffRank's P(YES) cost one forward each).

The LLMs run one after another in one invocation, so their ratios are comparable on a
noisy machine; each is timed with ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

LLMS = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
BATCH, VIDEO_TOKENS, PROMPT_TOKENS, ANSWER_TOKENS = 4, 2 * 53, 48, 16


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def measure(spec: str, repeats: int, threads: int) -> dict[str, float]:
    """One LLM's costs (runs in the child process)."""
    import torch

    from stepdiff.llm.loading import load_frozen_llm

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    llm = load_frozen_llm(spec)
    load_seconds = time.perf_counter() - start
    load_rss = peak_rss_gb()
    model, hidden = llm.model, llm.hidden_size
    embed = model.get_input_embeddings()
    vocab = embed.weight.shape[0]
    text = torch.randint(0, min(vocab, 30000), (BATCH, PROMPT_TOKENS + ANSWER_TOKENS))
    video = torch.randn(BATCH, VIDEO_TOKENS, hidden) * embed.weight.std()
    labels = torch.cat(
        [torch.full((BATCH, VIDEO_TOKENS + PROMPT_TOKENS), -100), text[:, -ANSWER_TOKENS:]], 1
    )

    def step(backward: bool) -> float:
        leaf = video.clone().requires_grad_(backward)
        inputs = torch.cat([leaf, embed(text)], 1)  # (B, L, H)
        began = time.perf_counter()
        with torch.set_grad_enabled(backward):
            loss = model(inputs_embeds=inputs, labels=labels).loss
            if backward:
                loss.backward()
        return time.perf_counter() - began

    results = {"load_s": load_seconds, "load_rss_gb": load_rss}
    for name, backward in (("train", True), ("score", False)):
        step(backward)  # warm-up
        seconds = statistics.median(step(backward) for _ in range(repeats))
        results[f"{name}_rows_per_s"] = BATCH / seconds
    results["peak_rss_gb"] = peak_rss_gb()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llms", nargs="+", default=LLMS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.repeats, args.threads)))
        return
    rows = {}
    for spec in args.llms:
        command = [
            sys.executable,
            __file__,
            "--child",
            spec,
            "--repeats",
            str(args.repeats),
            "--threads",
            str(args.threads),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{spec}: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        rows[spec] = json.loads(done.stdout.strip().splitlines()[-1])
    base = rows.get(args.llms[0])
    print(
        f"B={BATCH} rows of {VIDEO_TOKENS} video + {PROMPT_TOKENS} prompt + "
        f"{ANSWER_TOKENS} answer tokens, {args.threads} threads, median of {args.repeats}"
    )
    print(
        "| LLM | load s | RSS after load GB | train rows/s | score rows/s | peak RSS GB "
        "| train vs first |"
    )
    print("|---|---|---|---|---|---|---|")
    for spec, r in rows.items():
        ratio = r["train_rows_per_s"] / base["train_rows_per_s"] if base else float("nan")
        print(
            f"| {spec} | {r['load_s']:.1f} | {r['load_rss_gb']:.2f} "
            f"| {r['train_rows_per_s']:.2f} | {r['score_rows_per_s']:.2f} "
            f"| {r['peak_rss_gb']:.2f} | {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
