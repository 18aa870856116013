"""Latency of one `stepdiff ask` with the default models: cold (a new process) and warm.

Cold: a fresh `stepdiff ask` process with an empty feature cache (imports, model load,
decoding, encoding, answering). Warm: the same question in a process where the model is
loaded and the clips' features are cached. Peak RSS is read from the OS.

Several questions about one pair (a per-category report: six difference captions and six
P(YES)): the prompt prefix holding both videos run once for all questions (shared) vs
every full prompt, timed alternately in one process; answers must be identical.

    .venv/bin/python benchmarks/bench_ask.py [--repeats 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "What is the main difference between these videos in the category Tools/Equipment?"


def _cold(
    ref: Path, cand: Path, max_new_tokens: int, extra: tuple[str, ...] = ()
) -> tuple[float, float]:
    """Wall time (s) and peak RSS (GB) of one fresh `stepdiff ask` process that decodes and
    encodes both clips (--no-cache); the de-quantised LLM comes from its usual cache."""
    command = [
        sys.executable,
        "-m",
        "stepdiff.cli",
        "ask",
        str(ref),
        str(cand),
        "-q",
        QUESTION,
        "--json",
        "--max-new-tokens",
        str(max_new_tokens),
        "--no-cache",
        *extra,
    ]
    with tempfile.TemporaryFile() as errors:  # a pipe could fill up and block the child
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        # wait4 gives this process's own peak RSS (RUSAGE_CHILDREN is the largest of all).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{errors.read().decode()}")
    return wall, usage.ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()

    from stepdiff.encoders.cache import FeatureCache
    from stepdiff.llm.loading import load_frozen_llm
    from stepdiff.model.build import load_model_from
    from stepdiff.model_files import resolve_model_config
    from stepdiff.video.clip import ClipRef
    from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

    # A wooden spoon stirring yellow food in circles in a dark pan; a whisk beating orange
    # food back and forth in a red pot.
    reference_scene = SceneSpec(
        "pan", (60, 60, 60), "spoon", (200, 160, 90), (230, 200, 60), "circle"
    )
    candidate_scene = SceneSpec(
        "pot", (170, 40, 40), "whisk", (190, 190, 200), (235, 130, 40), "back_and_forth"
    )

    work = Path(tempfile.mkdtemp(prefix="stepdiff-bench-"))
    ref = write_synthetic_clip(
        work / "ref.mp4", reference_scene, seconds=args.seconds, size=(640, 360)
    )
    cand = write_synthetic_clip(
        work / "cand.mp4", candidate_scene, seconds=args.seconds, size=(640, 360)
    )
    # The shipped model's LLM, de-quantised once, outside the timings.
    load_frozen_llm(resolve_model_config()[0].llm)

    import importlib.util

    with_llamacpp = importlib.util.find_spec("llama_cpp") is not None
    colds, peaks, colds_llamacpp, peaks_llamacpp = [], [], [], []
    for _ in range(args.repeats):
        wall, peak = _cold(ref, cand, args.max_new_tokens)
        colds.append(wall)
        peaks.append(peak)
        if with_llamacpp:
            wall, peak = _cold(ref, cand, args.max_new_tokens, ("--llamacpp",))
            colds_llamacpp.append(wall)
            peaks_llamacpp.append(peak)

    model = load_model_from(feature_cache=FeatureCache(work / "warm"))  # the shipped model
    clips = [ClipRef(ref), ClipRef(cand)]
    model.ask(*clips, [QUESTION], max_new_tokens=args.max_new_tokens)  # fills the cache
    warms = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.ask(*clips, [QUESTION], max_new_tokens=args.max_new_tokens)
        warms.append(time.perf_counter() - start)
    this_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    shared_rows = _shared_prefix_rows(model, clips, args)

    print(
        f"two {args.seconds:g} s 640x360 clips, answers of up to {args.max_new_tokens} tokens, "
        f"{args.repeats} repeats (median)"
    )
    print("| measure | value |\n|---|---|")
    cold, warm = statistics.median(colds), statistics.median(warms)
    print(
        f"| cold `stepdiff ask` (new process, features not cached) | {cold:.2f} s "
        f"(range {min(colds):.2f}-{max(colds):.2f}) |"
    )
    print(f"| warm `model.ask` (model loaded, features cached) | {warm:.2f} s |")
    if colds_llamacpp:
        print(
            f"| cold `stepdiff ask --llamacpp` | {statistics.median(colds_llamacpp):.2f} s "
            f"(range {min(colds_llamacpp):.2f}-{max(colds_llamacpp):.2f}) |"
        )
    print(f"| cold / warm | {cold / warm:.1f}x |")
    print(f"| peak RSS, cold process | {max(peaks):.2f} GB |")
    if peaks_llamacpp:
        print(f"| peak RSS, cold `--llamacpp` process | {max(peaks_llamacpp):.2f} GB |")
    print(f"| peak RSS, warm process | {this_peak:.2f} GB |")
    for row in shared_rows:
        print(row)


def _shared_prefix_rows(model, clips, args: argparse.Namespace) -> list[str]:
    """Table rows: six category questions about one pair, shared prefix vs full prompts."""
    from stepdiff.data.categories import CATEGORIES
    from stepdiff.data.questions import difference_question, same_question

    features = model.clip_features(clips)  # (2, T, P, D)
    count = len(CATEGORIES)
    ref = features[0:1].expand(count, *features.shape[1:])
    cand = features[1:2].expand(count, *features.shape[1:])
    captions = [difference_question(c) for c in CATEGORIES]
    yes_no = [same_question(c) for c in CATEGORIES]
    rows = []
    for name, run in (
        (f"{count} P(YES)", lambda share: model.p_yes(ref, cand, yes_no, share_prefix=share)),
    ):
        times: dict[bool, list[float]] = {True: [], False: []}
        outputs = {}
        for _ in range(args.repeats):
            for share in (True, False):
                start = time.perf_counter()
                outputs[share] = run(share)
                times[share].append(time.perf_counter() - start)
        shared, full = statistics.median(times[True]), statistics.median(times[False])
        same = f"max difference {float((outputs[True] - outputs[False]).abs().max()):.1e}"
        rows.append(
            f"| {name}: shared prefix / full prompts | {shared:.2f} s / {full:.2f} s "
            f"= {full / shared:.1f}x faster ({same}) |"
        )
    rows.extend(_llamacpp_rows(model, clips, ref, cand, captions, args))
    return rows


def _llamacpp_rows(
    model, clips, ref, cand, captions: list[str], args: argparse.Namespace
) -> list[str]:
    """A warm answer, and six captions, through llama.cpp (video tokens injected) vs
    torch, timed alternately; llama.cpp needs the optional llamacpp extra."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return ["| llama.cpp answers | skipped: llama-cpp-python is not installed |"]
    model.use_llamacpp()
    model.ask(*clips, [QUESTION], max_new_tokens=args.max_new_tokens)  # its prefix, once
    warms = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.ask(*clips, [QUESTION], max_new_tokens=args.max_new_tokens)
        warms.append(time.perf_counter() - start)
    warm_row = f"| warm `model.ask` through llama.cpp | {statistics.median(warms):.2f} s |"
    from stepdiff.llm.decoding import TorchDecoder

    torch_decoder = TorchDecoder(model.llm, model.tokenizer.pad_token_id)
    decoders = {"llama.cpp": model.decoder, "torch": torch_decoder}
    times, outputs = {"llama.cpp": [], "torch": []}, {}
    for _ in range(args.repeats):
        for name in times:
            model.decoder = decoders[name]
            start = time.perf_counter()
            outputs[name] = model.generate(ref, cand, captions, args.max_new_tokens)
            times[name].append(time.perf_counter() - start)
    model.decoder = torch_decoder
    fast, slow = statistics.median(times["llama.cpp"]), statistics.median(times["torch"])
    same = sum(a == b for a, b in zip(outputs["llama.cpp"], outputs["torch"], strict=True))
    return [
        warm_row,
        f"| {len(captions)} captions: llama.cpp (video tokens injected) / torch, both "
        f"sharing the prefix | {fast:.2f} s / {slow:.2f} s = {slow / fast:.1f}x faster "
        f"({same} of {len(captions)} answers identical) |",
    ]


if __name__ == "__main__":
    main()
