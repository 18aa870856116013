"""Build any scorer by name: StepDiff or one of the paper's baselines.

Names: ``stepdiff``, ``stepdiff-likelihood`` (DiffMCQ by the caption's likelihood even
with a caption match head), ``single-video``, ``blind-llm``, ``socratic`` (descriptions from
object tags and narration), ``socratic-oracle`` (ground-truth descriptions of
SynthKitchen clips), ``random``, ``feature-distance`` or ``feature-distance:<encoder>``
(DiffRank only: closeness of mean frozen frame features), ``vlembed:<CLIP/SigLIP id or folder>``
``vlembed-aligned:<alignment head folder>`` (the offline joint space), and the trained
model baselines ``vclm:<folder>`` (a projector trained on single-video data only, given
both videos) and ``interleaved:<folder>`` (the interleaved stage before pair QA tuning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stepdiff.encoders.cache import FeatureCache
from stepdiff.errors import ConfigError
from stepdiff.eval.scorers import PairScorer, SingleVideoScorer, StepDiffScorer
from stepdiff.model_options import ModelOptions

SCORER_NAMES = (
    "stepdiff",
    "stepdiff-likelihood",
    "single-video",
    "blind-llm",
    "socratic",
    "socratic-oracle[:fields]",
    "random",
    "feature-distance[:<encoder>]",
    "vlembed:<model>",
    "vlembed-aligned:<folder>",
    "vclm:<model folder>",
    "interleaved:<model folder>",
)


@dataclass
class ScorerOptions:
    """Where a scorer's parts come from: the model (as `stepdiff ask` names it) and the
    baselines' own inputs."""

    model: ModelOptions = field(default_factory=ModelOptions)
    seed: int = 0
    clips: Path | None = None  # SynthKitchen clips.jsonl, for socratic-oracle
    caption_pool: list[str] = field(default_factory=list)  # DiffCap answers for VLEmbed
    max_new_tokens: int = 32


def _llm(options: ScorerOptions):
    from stepdiff.config import load_config
    from stepdiff.llm.loading import load_frozen_llm
    from stepdiff.model_files import read_checkpoint_config

    model, overrides = options.model, options.model.config_overrides()
    if model.checkpoint is not None:
        config = read_checkpoint_config(model.checkpoint).with_overrides(overrides)
    else:
        config = load_config(model.config, overrides)
    return load_frozen_llm(config.llm, config.llm_dtype), config


def _text_scorer(options: ScorerOptions, describe: Callable | None, name: str) -> PairScorer:
    from stepdiff.baselines.text_llm import TextLLMScorer

    llm, config = _llm(options)
    return TextLLMScorer(
        llm,
        describe,
        name=name,
        prompt_format=config.prompt_format,
        max_new_tokens=options.max_new_tokens,
    )


def build_scorer(name: str, options: ScorerOptions | None = None) -> PairScorer:
    """The scorer called ``name`` (see SCORER_NAMES)."""
    options = options or ScorerOptions()
    if name == "stepdiff":
        return StepDiffScorer(options.model.load(), max_new_tokens=options.max_new_tokens)
    if name == "stepdiff-likelihood":
        scorer = StepDiffScorer(
            options.model.load(), max_new_tokens=options.max_new_tokens, likelihood=True
        )
        scorer.name = name
        return scorer
    if name == "single-video":
        return SingleVideoScorer(options.model.load(), max_new_tokens=options.max_new_tokens)
    if name == "random":
        from stepdiff.baselines.random import RandomScorer

        return RandomScorer(options.seed)
    if name == "feature-distance" or name.startswith("feature-distance:"):
        from stepdiff.baselines.feature_distance import build_feature_distance
        from stepdiff.config import StepDiffConfig

        default = StepDiffConfig()  # the default model's encoder and frame count
        encoder = name.partition(":")[2] or default.encoder
        return build_feature_distance(encoder, default.num_frames, options.model.cache)
    if name == "blind-llm":
        return _text_scorer(options, None, name)
    if name == "socratic":
        from stepdiff.baselines.describers import SourceDescriber

        return _text_scorer(options, SourceDescriber(), name)
    if name in ("socratic-oracle", "socratic-oracle:fields"):
        from stepdiff.baselines.describers import OracleDescriber

        if options.clips is None:
            raise ConfigError(f"{name} needs --clips (a SynthKitchen clips.jsonl)")
        describer = OracleDescriber.from_file(options.clips, fields=name.endswith(":fields"))
        return _text_scorer(options, describer, name)
    if name.split(":", 1)[0] in ("vclm", "interleaved") and ":" in name:
        from stepdiff.model.build import load_model

        kind, _, folder = name.partition(":")
        cache = FeatureCache() if options.model.cache else None
        model = load_model(folder, feature_cache=cache, overrides=options.model.config_overrides())
        scorer = StepDiffScorer(model, max_new_tokens=options.max_new_tokens)
        scorer.name = kind
        return scorer
    if name.startswith("vlembed:"):
        from stepdiff.baselines.vlembed import HFJointSpace, VLEmbedScorer

        return VLEmbedScorer(HFJointSpace(name.partition(":")[2]), options.caption_pool)
    if name.startswith("vlembed-aligned:"):
        from stepdiff.baselines.vlembed import VLEmbedScorer, load_aligned_space

        space = load_aligned_space(Path(name.partition(":")[2]), cache=options.model.cache)
        return VLEmbedScorer(space, options.caption_pool)
    raise ConfigError(f"scorer {name!r}: expected one of {', '.join(SCORER_NAMES)}")
