"""Assemble a StepDiffModel from a config or a saved checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from stepdiff.config import StepDiffConfig
from stepdiff.encoders.cache import FeatureCache
from stepdiff.encoders.registry import build_frame_encoder
from stepdiff.errors import ModelLoadError
from stepdiff.llm.loading import load_frozen_llm
from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.model_files import (
    PROJECTOR_FILE,
    checkpoint_config,
    read_checkpoint_config,
    read_projector_weights,
    resolve_model_config,
)
from stepdiff.projector import PerceiverProjector


def build_model(
    config: StepDiffConfig,
    *,
    feature_cache: FeatureCache | None = None,
    checkpoint: str | Path | None = None,
) -> StepDiffModel:
    """Load the frozen encoder and LLM, build the projector, optionally load its weights.

    With ``checkpoint``, the projector weights come from that folder and ``config`` should
    be the checkpoint's own (see ``load_model``).
    """
    encoder = build_frame_encoder(config.encoder)
    llm = load_frozen_llm(config.llm, config.llm_dtype)
    embeddings = llm.model.get_input_embeddings().weight  # (V, H)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        projector = PerceiverProjector(
            input_dim=encoder.dim,
            output_dim=llm.hidden_size,
            config=config.projector,
            # Under FSDP's low-memory loading only the first process reads the LLM's
            # weights (the others hold meta tensors until FSDP broadcasts them, projector
            # included), so a stand-in scale is fine there.
            output_std=1.0 if embeddings.is_meta else float(embeddings.float().std()),
        )
    if config.projector.output_head == "words" and not embeddings.is_meta:
        projector.set_word_anchors(embeddings)
    trained = False
    if checkpoint is not None:
        load_projector_state(projector, read_projector_weights(checkpoint), checkpoint)
        trained = True
    model = StepDiffModel(
        config, encoder, llm, projector, feature_cache=feature_cache, projector_trained=trained
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("projector.") for name in trainable), (
        f"only the projector may train, but these require grad: {sorted(trainable)[:5]}"
    )
    return model


# Input statistics a projector checkpoint may lack (saved before inputs were
# standardised), with the identity value it then loads with.
IDENTITY_STATISTICS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "input_mean": torch.zeros_like,
    "input_std": torch.ones_like,
}


def load_projector_state(
    projector: PerceiverProjector, state: dict[str, torch.Tensor], source: str | Path
) -> None:
    expected = projector.state_dict()
    # Checkpoints written before inputs were standardised: identity statistics, which is
    # what they were trained with.
    identity = {k: like(expected[k]) for k, like in IDENTITY_STATISTICS.items() if k not in state}
    state = {**identity, **state}
    # A question gate starts as the identity, so a comparing projector trained without one
    # (e.g. the stage a gated stage starts from) loads into a gated model unchanged, and
    # one saved before the gate was centred on the training questions has a zero mean.
    # (All zeros: a gate of 2 * sigmoid(0) = 1 on every channel, and no centring.)
    gate_start = {
        k: torch.zeros_like(v)
        for k, v in expected.items()
        if k.startswith("question_gate.") or k == "question_mean"
    }
    if any(k.startswith("question_gate.") for k in state):
        gate_start = {k: v for k, v in gate_start.items() if k == "question_mean"}
    state = {**gate_start, **state}
    # The comparison read-out (added later) only serves a training loss: a checkpoint
    # without one takes this projector's freshly initialised read-out.
    readout = {k: v for k, v in expected.items() if k.startswith("comparison_readout.")}
    state = {**readout, **state}
    # Likewise a caption match head (all its weights and statistics are "match_...")
    # added to a projector trained without one, e.g. the one its training run starts
    # from: fresh weights, identity statistics.
    if not any(k.startswith("match_") for k in state):
        state = {**{k: v for k, v in expected.items() if k.startswith("match_")}, **state}
    if "word_ids" in state and "word_ids" in expected:
        # The words head's vocabulary is as long as the training texts made it.
        projector.word_ids = torch.empty_like(state["word_ids"])
        expected["word_ids"] = projector.word_ids
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise ModelLoadError(
            f"{source}: projector weights do not match this model "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ModelLoadError(
                f"{source}: projector weight {name!r} has shape {tuple(tensor.shape)} but this "
                f"encoder/LLM needs {tuple(expected[name].shape)} (checkpoint from another model?)"
            )
    check_finite_weights(state, Path(source) / PROJECTOR_FILE)
    projector.load_state_dict(state)


def check_finite_weights(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a NaN or infinite projector weight: every answer and score would be NaN
    (a diverged run saves such weights), failing far from here or not at all."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelLoadError(
                f"{path}: projector weight {name!r} holds {bad} NaN or infinite values of "
                f"{tensor.numel()} (a diverged training run?)"
            )


def load_model(
    folder: str | Path,
    *,
    feature_cache: FeatureCache | None = None,
    overrides: list[str] | None = None,
) -> StepDiffModel:
    """Rebuild a saved StepDiff model: its frozen parts by reference, its projector weights.

    ``overrides`` (``key=value``) may swap where a frozen part is loaded from (e.g. the
    same LLM from a local folder instead of a hub id); shapes are still checked.
    """
    config = checkpoint_config(folder, overrides)
    return build_model(config, feature_cache=feature_cache, checkpoint=folder)


def load_model_from(
    config: str | Path | None = None,
    checkpoint: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    feature_cache: FeatureCache | None = None,
) -> StepDiffModel:
    """A model from a config (file or preset) or from a checkpoint folder, not both, with
    ``key=value`` overrides applied (see ``resolve_model_config``: with neither, the
    shipped trained model)."""
    resolved, folder = resolve_model_config(config, checkpoint, overrides)
    return build_model(resolved, feature_cache=feature_cache, checkpoint=folder)


def export_model(source: str | Path, dest: str | Path, *, half: bool = True) -> Path:
    """Copy a trained model folder for shipping: projector weights (fp16 by default, which
    halves the size; they load back into fp32 parameters), config and any reports."""
    import shutil

    from safetensors.torch import save_file

    source, dest = Path(source), Path(dest)
    weights = read_projector_weights(source)
    read_checkpoint_config(source)
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != PROJECTOR_FILE and item.suffix in {".json", ".md"}:
            shutil.copy2(item, dest / item.name)
    dtype = torch.float16 if half else torch.float32
    state = {k: v.to(dtype).contiguous() for k, v in weights.items()}
    save_file(state, dest / f".{PROJECTOR_FILE}.tmp")
    (dest / f".{PROJECTOR_FILE}.tmp").replace(dest / PROJECTOR_FILE)
    return dest
