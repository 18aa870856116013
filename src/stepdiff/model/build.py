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
    check_finite_weights,
    checkpoint_config,
    read_projector_weights,
    resolve_model_config,
)
from stepdiff.projector import PerceiverProjector


def build_model(
    config: StepDiffConfig,
    *,
    feature_cache: FeatureCache | None = None,
    checkpoint: str | Path | None = None,
    defer_llm: bool = False,
) -> StepDiffModel:
    """Load the frozen encoder and LLM, build the projector, optionally load its weights.

    With ``checkpoint``, the projector weights come from that folder and ``config`` should
    be the checkpoint's own (see ``load_model``). ``defer_llm``: load the LLM's weights at
    their first use (see ``FrozenLLM``), for a model that answers through llama.cpp.
    """
    encoder = build_frame_encoder(config.encoder)
    llm = load_frozen_llm(config.llm, config.llm_dtype, defer=defer_llm)
    embeddings = llm.input_embeddings()  # (V, H)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        projector = PerceiverProjector(
            input_dim=encoder.dim,
            output_dim=llm.hidden_size,
            config=config.projector,
            # Under FSDP's low-memory loading only the first process reads the LLM's
            # weights (the others hold meta tensors until FSDP broadcasts them, projector
            # included), so a stand-in scale is fine there. A checkpoint's weights replace
            # the initial ones: no need to read the whole (perhaps memory-mapped) table.
            output_std=1.0
            if embeddings.is_meta or checkpoint is not None
            else float(embeddings.float().std()),
        )
    if "words" in projector.components and not embeddings.is_meta:
        projector.components["words"].set_anchors(embeddings)
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
    for name, component in projector.components.items():
        prefix = f"components.{name}."
        # Older checkpoints kept a component's weights at the projector's top level.
        state = {
            f"{prefix}{k}" if k.startswith(component.legacy_prefixes) else k: v
            for k, v in state.items()
        }
        # Weights a checkpoint may lack load fresh: a read-out that only serves a
        # training loss (added later), or a head added to a projector trained without it.
        for optional in component.optional_weights:
            if not any(k.startswith(prefix + optional) for k in state):
                fresh = {k: v for k, v in expected.items() if k.startswith(prefix + optional)}
                state = {**fresh, **state}
        # Buffers as long as training made them (the words head's vocabulary).
        for buffer in component.sized_by_checkpoint:
            if (key := prefix + buffer) in state:
                setattr(component, buffer, torch.empty_like(state[key]))
                expected[key] = getattr(component, buffer)
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
    defer_llm: bool = False,
) -> StepDiffModel:
    """A model from a config (file or preset) or from a checkpoint folder, not both, with
    ``key=value`` overrides applied (see ``resolve_model_config``: with neither, the
    shipped trained model)."""
    resolved, folder = resolve_model_config(config, checkpoint, overrides)
    return build_model(
        resolved, feature_cache=feature_cache, checkpoint=folder, defer_llm=defer_llm
    )
