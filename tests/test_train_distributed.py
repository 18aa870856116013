"""The trainer on 2 CPU processes (gloo): DDP of the projector, FSDP of the whole model
(frozen LLM included; see distributed_worker.py), and exact resume of an FSDP run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_data import write_pair_qa

from stepdiff.model_files import read_projector_weights

WORKER = Path(__file__).with_name("distributed_worker.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory, small_synthkitchen: Path) -> list[dict]:
    """What each of the 2 processes reports after its DDP, FSDP and resumed FSDP runs."""
    work = tmp_path_factory.mktemp("distributed")
    qa = write_pair_qa(small_synthkitchen, work, limit=16)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", str(WORKER), str(small_synthkitchen), str(qa), str(work),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((work / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_both_processes_join_one_gloo_group(ranks: list[dict]) -> None:
    for report in ranks:
        assert report["world"] == 2
        assert report["distributed_type"] == "DistributedType.MULTI_CPU"
    # Each process trains on its own half of every global batch; both report the loss of
    # the whole batch.
    assert ranks[0]["ddp"]["losses"] == pytest.approx(ranks[1]["ddp"]["losses"], rel=1e-6)


def test_fsdp_wraps_each_llm_layer_the_projector_and_the_encoder(ranks: list[dict]) -> None:
    # One wrap per FSDP run (fsdp, fsdp-resumed twice, fsdp-bf16); the DDP run wraps none.
    assert len(ranks[0]["units"]) == 4
    for units, layers in ranks[0]["units"]:
        assert units == layers + 3  # + projector, encoder and the root


def test_fsdp_trains_exactly_as_ddp(ranks: list[dict]) -> None:
    for report in ranks:
        assert report["fsdp"]["losses"] == pytest.approx(report["ddp"]["losses"], rel=1e-5)
    ddp = read_projector_weights(ranks[0]["ddp"]["model"])
    fsdp = read_projector_weights(ranks[0]["fsdp"]["model"])
    # The FSDP model was written from the gathered, full projector: same names and values.
    assert set(ddp) == set(fsdp)
    for name, weight in ddp.items():
        assert torch.allclose(weight, fsdp[name], atol=1e-5), name


def test_fsdp_resume_is_exact(ranks: list[dict]) -> None:
    for report in ranks:
        # The resumed process redid steps 3 and 4 from the step-2 checkpoint.
        assert report["fsdp-resumed"]["losses"] == pytest.approx(
            report["fsdp"]["losses"][2:], rel=1e-6
        )
    resumed = read_projector_weights(ranks[0]["fsdp-resumed"]["model"])
    straight = read_projector_weights(ranks[0]["fsdp"]["model"])
    for name, weight in straight.items():
        assert torch.allclose(weight, resumed[name], atol=1e-6), name


def test_dev_evaluation_runs_on_every_process_under_fsdp(ranks: list[dict]) -> None:
    # FSDP gathers each decoder layer from all processes, so all of them evaluate.
    assert all("mcq_accuracy" in report["fsdp"]["dev"] for report in ranks)
    # Under DDP the main process alone evaluates.
    assert "mcq_accuracy" in ranks[0]["ddp"]["dev"] and ranks[1]["ddp"]["dev"] == {}


def test_fsdp_shards_a_16_bit_llm_beside_the_fp32_projector(ranks: list[dict]) -> None:
    for report in ranks:
        losses = report["fsdp-bf16"]["losses"]
        assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
    weights = read_projector_weights(ranks[0]["fsdp-bf16"]["model"])
    assert all(w.dtype == torch.float32 for w in weights.values())


def test_ddp_trains_a_compare_projector_on_pairs_mixed_with_interleaved_data(
    ranks: list[dict],
) -> None:
    # Interleaved micro-batches leave the compare weights without gradients: DDP must
    # expect unused parameters, or the next step fails.
    losses = [report["ddp-compare"]["losses"] for report in ranks]
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], rel=1e-6)
