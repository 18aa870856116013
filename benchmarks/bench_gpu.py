"""StepDiff's training and scoring at every scale on one accelerator, without weights.

    python benchmarks/bench_gpu.py --device cuda --out gpu.json            # the full suite
    python benchmarks/bench_gpu.py --device cpu --quick                     # a smoke run

Frozen parts are built from their architecture configs with random weights (the shipped
``configs/arch`` files for Llama-2, or a local folder holding a config and tokenizer), so
no download is needed: speed and memory depend on shapes, not on weight values. Encoder
features are random tensors of the encoder's output shape, as training reads cached
features and never runs the encoder. Sections, each timed side by side in one run:

- ``gemm``: the matmul peak (bf16 and fp32) that MFU is measured against.
- ``train``: one projector training step (frozen LLM forward + backward to its inputs,
  projector forward + backward, AdamW) per batch size: samples/s, model TFLOP/s, MFU and
  peak memory; and the cost per sample as the number of frames (time steps) grows.
- ``scoring``: DiffMCQ's 4 options scored in one batched forward vs option by option,
  with the largest score difference between the two.
- ``generation``: six questions about one pair (a per-category report), greedy answers,
  with the prompt prefix that holds both videos run once vs every full prompt.
- ``encoder``: frozen video encoder throughput (clips/s), for the feature-cache pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stepdiff.config import load_config
from stepdiff.data.questions import difference_question
from stepdiff.encoders.registry import build_frame_encoder
from stepdiff.llm.loading import FrozenLLM, llm_dtype
from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.projector import PerceiverProjector
from stepdiff.train.dryrun import find_architecture, llm_architecture
from stepdiff.train.flops import (
    llm_matmul_params,
    measure_gemm_peak,
    mfu,
    projector_training_flops,
    training_flops_per_sample,
)

SECTIONS = ("train", "scoring", "generation", "encoder")
QUESTION = difference_question("Tools/Equipment")
ANSWER = "The candidate uses a metal whisk in a glass bowl while the reference uses a wooden spoon."
OPTIONS = [
    ANSWER,
    "The candidate stirs for much longer and adds the milk before the flour.",
    "There is no difference in tools between the two videos.",
    "The reference cuts the onion on a board and the candidate cuts it in the hand.",
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_random_model(
    preset: str, llm_spec: str, feature_dim: int, dtype: str, device: torch.device
) -> StepDiffModel:
    """A StepDiffModel with a random-weight frozen LLM of ``llm_spec``'s architecture."""
    from transformers import AutoModelForCausalLM

    config = load_config(preset, [f"llm={llm_spec}", f"llm_dtype={dtype}"])
    arch, tokenizer, _, _ = llm_architecture(llm_spec)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(arch, dtype=llm_dtype(dtype))
    model.requires_grad_(False).eval()
    if getattr(tokenizer, "pad_token_id", None) is None:
        tokenizer.pad_token = tokenizer.eos_token
    llm = FrozenLLM(model=model, tokenizer=tokenizer, name=llm_spec)
    projector = PerceiverProjector(
        input_dim=feature_dim, output_dim=llm.hidden_size, config=config.projector
    ).to(device)
    # The encoder is never run here (features are random stand-ins of its output shape);
    # the tiny one fills the model's slot without loading weights.
    return StepDiffModel(config, build_frame_encoder("tiny"), llm, projector)


def features(batch: int, videos: int, shape: tuple[int, int, int], device: torch.device):
    """Random stand-ins for cached encoder features -> (B, V, T, P, D)."""
    return torch.randn(batch, videos, *shape, device=device, dtype=torch.bfloat16)


def train_section(
    model: StepDiffModel,
    shape: tuple[int, int, int],
    batch_sizes: list[int],
    peak: float,
    device: torch.device,
    repeats: int,
) -> dict[str, Any]:
    params = list(model.projector_module.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    llm_params = llm_matmul_params(model.llm)
    cfg = model.llm.config
    rows = []

    def step_for(batch_size: int, time_steps: int) -> tuple[Callable[[], None], int]:
        feature_shape = (time_steps, *shape[1:])
        videos = features(batch_size, 2, feature_shape, device)
        batch = model.collate(model._samples([QUESTION] * batch_size, [ANSWER] * batch_size))

        def step() -> None:
            loss = model(batch, videos)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step, int(batch.input_ids.shape[1])

    for batch_size in batch_sizes:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        step, seq_len = step_for(batch_size, shape[0])
        seconds = timed(step, device, repeats)
        per_video = projector_training_flops(
            model.projector_module.config,
            shape[2],
            model.llm.config.hidden_size,
            shape[0] * shape[1],
        )
        flops = training_flops_per_sample(
            llm_params,
            0,
            seq_len,
            shape[0] * shape[1],
            num_latents=model.num_video_tokens,
            llm_layers=int(cfg.num_hidden_layers),
            llm_width=int(cfg.hidden_size),
            projector_per_video=per_video,
        )
        samples_per_s = batch_size / seconds
        row = {
            "batch": batch_size,
            "seq_len": seq_len,
            "step_s": seconds,
            "samples_per_s": samples_per_s,
            "tflop_per_s": samples_per_s * flops / 1e12,
            "mfu": mfu(samples_per_s, flops, peak),
        }
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        rows.append(row)
        print(f"  train batch {batch_size}: {row}", flush=True)
    frames = []
    batch_size = batch_sizes[-1]
    for time_steps in (max(1, shape[0] // 2), shape[0], shape[0] * 2):
        step, _ = step_for(batch_size, time_steps)
        seconds = timed(step, device, repeats)
        frames.append({"time_steps": time_steps, "ms_per_sample": 1e3 * seconds / batch_size})
        print(f"  frames: {frames[-1]}", flush=True)
    return {"batches": rows, "frames": frames}


def scoring_section(
    model: StepDiffModel,
    shape: tuple[int, int, int],
    instances: int,
    device: torch.device,
    repeats: int,
) -> dict[str, Any]:
    count = len(OPTIONS)
    videos = features(instances, 2, shape, device)  # (I, 2, T, P, D)
    ref, cand = videos[:, 0], videos[:, 1]

    def batched() -> torch.Tensor:
        # All options of all instances in one forward: rows instance-major.
        ref_rows = ref.repeat_interleave(count, dim=0)
        cand_rows = cand.repeat_interleave(count, dim=0)
        return model.loglik(
            ref_rows, cand_rows, [QUESTION] * (instances * count), OPTIONS * instances
        )

    def one_by_one() -> torch.Tensor:
        scores = [
            model.loglik(ref[i : i + 1], cand[i : i + 1], [QUESTION], [option])
            for i in range(instances)
            for option in OPTIONS
        ]
        return torch.cat(scores)

    batched_s = timed(batched, device, repeats)
    single_s = timed(one_by_one, device, repeats)
    difference = float((batched() - one_by_one()).abs().max())
    result = {
        "instances": instances,
        "options": count,
        "batched_s": batched_s,
        "one_by_one_s": single_s,
        "speedup": single_s / batched_s,
        "max_abs_score_difference": difference,
    }
    print(f"  scoring: {result}", flush=True)
    return result


def generation_section(
    model: StepDiffModel,
    shape: tuple[int, int, int],
    max_new_tokens: int,
    device: torch.device,
    repeats: int,
) -> dict[str, Any]:
    """Six category questions about one pair: in one call (the prefix decoded once) vs
    one call per question (the prefix's cache kept from the call before)."""
    from stepdiff.data.categories import CATEGORIES

    questions = [difference_question(category) for category in CATEGORIES]
    videos = features(1, 2, shape, device)  # (1, 2, T, P, D)
    ref = videos[:, 0].expand(len(questions), *shape)
    cand = videos[:, 1].expand(len(questions), *shape)
    outputs = {}

    def run(together: bool) -> None:
        if together:
            outputs[True] = model.generate(ref, cand, questions, max_new_tokens)
            return
        outputs[False] = [
            model.generate(ref[:1], cand[:1], [question], max_new_tokens)[0]
            for question in questions
        ]

    together_s = timed(lambda: run(True), device, repeats, warmup=1)
    one_by_one_s = timed(lambda: run(False), device, repeats, warmup=1)
    result = {
        "questions": len(questions),
        "max_new_tokens": max_new_tokens,
        "one_call_s": together_s,
        "one_call_per_question_s": one_by_one_s,
        "speedup": one_by_one_s / together_s,
        "identical_answers": sum(
            a == b for a, b in zip(outputs[True], outputs[False], strict=True)
        ),
    }
    print(f"  generation: {result}", flush=True)
    return result


def encoder_section(spec: str, batch: int, device: torch.device, repeats: int) -> dict[str, Any]:
    """Throughput of a random-weight HF video encoder on 16-frame clips."""
    from transformers import AutoModel

    config, _ = find_architecture(spec, "encoder")
    with torch.device(device):
        encoder = AutoModel.from_config(config, dtype=torch.bfloat16).eval()
    frames = int(getattr(config, "num_frames", 16))
    side = int(config.image_size)
    pixels = torch.randn(batch, frames, 3, side, side, device=device, dtype=torch.bfloat16)

    def run() -> None:
        with torch.no_grad():
            encoder(pixel_values=pixels)

    seconds = timed(run, device, repeats)
    result = {"encoder": spec, "batch": batch, "frames": frames, "clips_per_s": batch / seconds}
    print(f"  encoder: {result}", flush=True)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    parser.add_argument(
        "--small-llm", default="smollm2-135m-instruct", help="cpu-default's LLM: alias or folder"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--skip-13b", action="store_true")
    parser.add_argument(
        "--only", nargs="+", default=None, help="setups to run, e.g. paper-scale-13b/bfloat16"
    )
    parser.add_argument(
        "--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="what to time"
    )
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    results: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        results["device_name"] = torch.cuda.get_device_name(device)
    n = 1024 if args.quick else 8192

    def save() -> None:
        if args.out:
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=2))
            tmp.replace(args.out)

    results["gemm"] = {
        "bf16": measure_gemm_peak(n, args.repeats, torch.bfloat16, device),
        "fp32": measure_gemm_peak(n, args.repeats, torch.float32, device),
    }
    print(f"gemm peak FLOP/s: {results['gemm']}", flush=True)
    save()
    setups = [
        # name, preset, LLM, feature shape (T, P, D), dtypes, batch sizes
        ("cpu-default", "cpu-default", args.small_llm, (8, 49, 1280)),
    ]
    if not args.skip_13b and not args.quick:
        setups.append(
            ("paper-scale-13b", "paper-scale-13b", "meta-llama/Llama-2-13b-chat-hf", (8, 196, 768))
        )
    for name, preset, llm_spec, shape in setups:
        dtypes = ["float32"] if device.type == "cpu" else ["bfloat16", "float32"]
        if name != "cpu-default":
            dtypes = ["bfloat16"]
        for dtype in dtypes:
            key = f"{name}/{dtype}"
            if args.only and key not in args.only:
                continue
            print(f"{key}", flush=True)
            model = build_random_model(preset, llm_spec, shape[2], dtype, device)
            peak = results["gemm"]["bf16" if dtype != "float32" else "fp32"]
            if args.quick:
                batches, instances = [1, 2], 2
            elif name == "cpu-default":
                batches, instances = [8, 32, 128], 32
            else:
                batches, instances = [4, 16, 32], 8
            results[key] = {}
            if "train" in args.sections:
                results[key]["train"] = train_section(
                    model, shape, batches, peak, device, args.repeats
                )
            if "scoring" in args.sections:
                results[key]["scoring"] = scoring_section(
                    model, shape, instances, device, args.repeats
                )
            if "generation" in args.sections:
                tokens = 4 if args.quick else 24
                results[key]["generation"] = generation_section(
                    model, shape, tokens, device, min(args.repeats, 3)
                )
            save()
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if not args.quick and "encoder" in args.sections:
        results["encoder"] = encoder_section("MCG-NJU/videomae-base", 16, device, args.repeats)
        save()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
