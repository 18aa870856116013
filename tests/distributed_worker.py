"""Run by ``torchrun`` from test_train_distributed.py: the trainer on 2 CPU processes.

accelerate refuses FSDP without a GPU-class device, so the FSDP runs here replace only
accelerate's wrapping step with torch's own FSDP (one shard unit per decoder layer, one
for the projector, one for the encoder; original parameters kept); everything else is the
trainer's real code under accelerate's multi-CPU (gloo) setup, with the trainer's own
wrap policy (:func:`shard_policy`).

    torchrun --nproc_per_node 2 tests/distributed_worker.py BENCHMARK_DIR QA_FILE OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch.distributed.fsdp import FullyShardedDataParallel

import stepdiff.train.trainer as trainer_module
from stepdiff.train.config import load_train_config
from stepdiff.train.sharding import after_wrapping, shard_policy
from stepdiff.train.trainer import train

# Shard units of each wrapped model: (units, LLM layers), to check what FSDP wrapped.
UNITS: list[tuple[int, int]] = []


def _use_torch_fsdp(enabled: bool) -> None:
    def shard(accelerator, model):
        policy = shard_policy(model, ["LlamaDecoderLayer"])
        wrapped = FullyShardedDataParallel(
            model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu")
        )
        units = sum(isinstance(m, FullyShardedDataParallel) for m in wrapped.modules())
        UNITS.append((units, model.llm.config.num_hidden_layers))
        return after_wrapping(wrapped)

    trainer_module.uses_fsdp = lambda accelerator: enabled
    trainer_module.shard = shard


def main() -> None:
    benchmark, qa, out = (Path(arg) for arg in sys.argv[1:4])

    def config(name: str, *extra: str):
        return load_train_config(
            "tiny",
            [
                f"out={out / name}",
                f"data.pair_qa={qa}",
                f"data.video_dir={benchmark / 'videos'}",
                f"dev.diffmcq={benchmark / 'diffmcq_test.jsonl'}",
                f"dev.video_dir={benchmark / 'videos'}",
                "dev.max_items=4",
                "max_steps=4",
                "save_every=2",
                "eval_every=2",
                "batch_size=2",
                "grad_accum=2",
                "optim.lr=0.003",
                "tensorboard=false",
                *extra,
            ],
        )

    def run(name: str, *extra: str, stop_after: int | None = None):
        # A feature cache per run: each run encodes its clips (main process first).
        os.environ["STEPDIFF_CACHE"] = str(out / name / "cache")
        return train(config(name, *extra), show_progress=False, stop_after=stop_after)

    results = {}
    _use_torch_fsdp(False)
    results["ddp"] = run("ddp")
    _use_torch_fsdp(True)
    results["fsdp"] = run("fsdp")
    # Stopped after step 3: the last checkpoint is from step 2, so one step is redone.
    run("fsdp-resumed", stop_after=3)
    results["fsdp-resumed"] = run("fsdp-resumed")
    # A 16-bit LLM beside the fp32 projector: they must sit in different shard units.
    results["fsdp-bf16"] = run("fsdp-bf16", "max_steps=2", "model_overrides=[llm_dtype=bfloat16]")
    # A compare projector under DDP with interleaved micro-batches, which leave its
    # summary weights without gradients.
    _use_torch_fsdp(False)
    clips = [json.loads(line)["clip_id"] for line in (benchmark / "clips.jsonl").open()][:4]
    interleaved = out / "interleaved.jsonl"
    if int(os.environ.get("RANK", "0")) == 0:
        rows = [
            {"clips": clips[i : i + 2], "narrations": ["I stir now.", "Then I pour."]}
            for i in (0, 2)
        ]
        interleaved.write_text("".join(json.dumps(row) + "\n" for row in rows))
    torch.distributed.barrier()
    results["ddp-compare"] = run(
        "ddp-compare",
        f"data.interleaved={interleaved}",
        "data.mix={pair_qa: 0.5, interleaved: 0.5}",
        "model_overrides=[projector.compare=true]",
    )
    from accelerate import PartialState

    state = PartialState()  # what the trainer's Accelerator saw
    rank = state.process_index
    summary = {
        name: {"losses": result.losses, "dev": result.dev, "model": str(result.model_dir)}
        for name, result in results.items()
    }
    summary["units"] = UNITS
    summary["world"] = state.num_processes
    summary["distributed_type"] = str(state.distributed_type)
    (out / f"rank{rank}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
