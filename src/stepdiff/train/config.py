"""Training configuration: one YAML file (or shipped preset) plus ``key=value`` overrides.

Unknown keys are errors, and every check that needs no model runs before any compute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepdiff.config import check_keys, load_config, read_config_data
from stepdiff.errors import ConfigError
from stepdiff.variants import COMPONENTS

DATA_KINDS = ("pair_qa", "pair_rank", "pair_choice", "interleaved", "single_video", "descriptions")


@dataclass(frozen=True)
class DataConfig:
    """Training data: JSONL files per kind, and how often each kind is drawn."""

    pair_qa: tuple[str, ...] = ()  # {reference, candidate, question, answer} per line
    interleaved: tuple[str, ...] = ()  # {clips: [...], narrations: [...]} per line
    single_video: tuple[str, ...] = ()  # {clip_id, question, answer} per line
    # DiffRank items of training clips ({reference, targets, category, scores}, the
    # official format): a ranking loss on P(YES) (see StepDiffModel.forward).
    pair_rank: tuple[str, ...] = ()
    # DiffMCQ items of training clips ({difference, category, options, answer}): a loss
    # that ranks the caption's likelihood highest with the right pair.
    pair_choice: tuple[str, ...] = ()
    # Clip descriptions ({clip_id, fields: [...]} or {clip_id, description}): the words
    # head learns to spell them in its video tokens, with no LLM pass (describe_weight).
    descriptions: tuple[str, ...] = ()
    video_dir: str = "."  # where clip ids resolve
    # Relative frequency of each kind's micro-batches; kinds with no files are ignored.
    mix: dict[str, float] = field(default_factory=lambda: {"pair_qa": 1.0})
    max_items: int | None = None  # use only the first N items of each kind


@dataclass(frozen=True)
class DevConfig:
    """Periodic evaluation on a dev split (official DiffMCQ / DiffRank files)."""

    diffmcq: str | None = None
    diffrank: str | None = None
    # Descriptions of dev clips ({clip_id, fields}): the words head's slot accuracy.
    descriptions: str | None = None
    video_dir: str | None = None  # defaults to data.video_dir
    max_items: int | None = 32  # first N rows of each file, to keep evaluation cheap
    batch_size: int = 8


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | linear | constant (after warm-up)
    min_lr_ratio: float = 0.1  # final lr = lr * min_lr_ratio (cosine, linear)
    grad_clip: float | None = 1.0


SCHEDULES = ("cosine", "linear", "constant")
# The paper's answer loss, then each projector component's (stepdiff.variants).
LOSS_WEIGHTS = ("answer_weight", *(c.weight_key for c in COMPONENTS.values() if c.weight_key))


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; ``fingerprint`` identifies it for resuming."""

    out: str = "runs/train"
    model: str = "cpu-default"  # model preset or YAML file (see stepdiff.config)
    model_overrides: tuple[str, ...] = ()  # e.g. ["projector.width=256"]
    init_from: str | None = None  # checkpoint folder to start the projector from
    data: DataConfig = field(default_factory=DataConfig)
    dev: DevConfig = field(default_factory=DevConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 4  # samples per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimiser step
    max_steps: int = 100  # optimiser steps
    # Weights of the losses, summed: the paper's answer loss through the LLM, and each
    # projector component's own (stepdiff.variants; ``weight_key``): the comparing
    # projector's read-out on pair_rank items, the caption match on pair_choice items,
    # the words head's description slots on descriptions. With answer_weight=0 only
    # components train, without the LLM reading the videos.
    answer_weight: float = 1.0
    comparison_weight: float = 0.0
    match_weight: float = 0.0
    describe_weight: float = 0.0
    eval_every: int = 0  # steps; 0 = only at the end when a dev file is given
    save_every: int = 50  # steps; a checkpoint is always written at the end
    keep_checkpoints: int = 2
    log_every: int = 1
    seed: int = 0
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of the whole config but the output folder: a run resumes only with the
        settings it started with."""
        data = self.to_dict()
        data.pop("out")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        values = dict(data)
        sections = {}
        for name, section_cls in (("data", DataConfig), ("dev", DevConfig), ("optim", OptimConfig)):
            section = values.pop(name, {}) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: {name} must be a mapping")
            check_keys(section, section_cls, f"{source}: {name}")
            sections[name] = section
        check_keys(values, cls, source)
        data_section = sections["data"]
        for kind in DATA_KINDS:
            data_section[kind] = _as_paths(data_section.get(kind, ()), f"{source}: data.{kind}")
        if "betas" in sections["optim"]:
            sections["optim"]["betas"] = _as_betas(sections["optim"]["betas"], source)
        if "model_overrides" in values:
            values["model_overrides"] = _as_overrides(values["model_overrides"], source)
        try:
            config = cls(
                data=DataConfig(**data_section),
                dev=DevConfig(**sections["dev"]),
                optim=OptimConfig(**sections["optim"]),
                **values,
            )
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from None
        config.check(source)
        return config

    def check(self, source: str = "config") -> None:
        """Value checks that need no model or data."""
        positive = {
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_steps": self.max_steps,
            "keep_checkpoints": self.keep_checkpoints,
            "log_every": self.log_every,
            "save_every": self.save_every,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{source}: {name} must be a positive integer, got {value!r}")
        warmup = self.optim.warmup_steps
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(
                f"{source}: optim.warmup_steps must be an integer >= 0, got {warmup!r}"
            )
        self._check_model(source)
        if self.optim.schedule not in SCHEDULES:
            raise ConfigError(
                f"{source}: optim.schedule {self.optim.schedule!r}: expected one of "
                f"{', '.join(SCHEDULES)}"
            )
        numbers = {
            "optim.lr": self.optim.lr,
            "optim.weight_decay": self.optim.weight_decay,
            "optim.min_lr_ratio": self.optim.min_lr_ratio,
            **{key: getattr(self, key) for key in LOSS_WEIGHTS},
        }
        if self.optim.grad_clip is not None:  # None: no clipping
            numbers["optim.grad_clip"] = self.optim.grad_clip
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{source}: {name} must be a number, got {value!r}")
        if not self.optim.lr > 0:
            raise ConfigError(f"{source}: optim.lr must be positive")
        for index, beta in enumerate(self.optim.betas):
            # AdamW's moment decay rates: 1 or more never forgets (or grows without end).
            if not 0 <= beta < 1:
                raise ConfigError(f"{source}: optim.betas[{index}] must be in [0, 1), got {beta!r}")
        for name in LOSS_WEIGHTS:
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}: {name} must not be negative")
        if not any(getattr(self, name) for name in LOSS_WEIGHTS):
            raise ConfigError(f"{source}: {', '.join(LOSS_WEIGHTS)} are all 0")
        unknown = sorted(set(self.data.mix) - set(DATA_KINDS))
        if unknown:
            raise ConfigError(
                f"{source}: data.mix has unknown kind {unknown[0]!r} "
                f"(kinds: {', '.join(DATA_KINDS)})"
            )
        if any(w < 0 for w in self.data.mix.values()):
            raise ConfigError(f"{source}: data.mix weights must not be negative")
        if not self.active_kinds():
            raise ConfigError(
                f"{source}: no training data: give data.pair_qa, data.pair_rank, "
                "data.pair_choice, data.interleaved, data.single_video or data.descriptions "
                "files with a positive data.mix weight"
            )
        if "single_video" in self.active_kinds() and len(self.active_kinds()) > 1:
            raise ConfigError(
                f"{source}: single_video data trains a one-video model (the VCLM baseline); "
                "do not mix it with pair or interleaved data"
            )
        # Each component loss needs its kind of items; alone, they take no other kind.
        weighted = [c for c in COMPONENTS.values() if c.weight_key and getattr(self, c.weight_key)]
        for component in weighted:
            if component.trains_on not in self.active_kinds():
                raise ConfigError(
                    f"{source}: {component.weight_key} needs data.{component.trains_on} items"
                )
        taught = {component.trains_on for component in weighted}
        if "descriptions" in self.active_kinds() and "descriptions" not in taught:
            raise ConfigError(
                f"{source}: data.descriptions trains only the words head's description "
                "slots: set describe_weight > 0 (and projector.output_head=words)"
            )
        extra = sorted(set(self.active_kinds()) - taught)
        if not self.answer_weight and extra:
            raise ConfigError(
                f"{source}: with answer_weight=0 only the component losses train, each on its "
                f"own kind of items; give {extra[0]} a data.mix weight of 0"
            )

    def _check_model(self, source: str) -> None:
        """The model config with ``model_overrides`` applied must be valid too (it is
        only built once the data has been read, after the config is saved)."""
        try:
            load_config(self.model, list(self.model_overrides))
        except ConfigError as error:
            raise ConfigError(f"{source}: model and model_overrides: {error}") from None

    def active_kinds(self) -> dict[str, float]:
        """Kinds with files and a positive weight -> weight."""
        return {
            kind: float(self.data.mix.get(kind, 0.0))
            for kind in DATA_KINDS
            if getattr(self.data, kind) and self.data.mix.get(kind, 0.0) > 0
        }


def _as_paths(value: Any, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{label}: expected a file path or a list of file paths")
    return tuple(value)


def _as_betas(value: Any, source: str) -> tuple[float, float]:
    """``optim.betas`` as a pair of numbers (their range is checked with the others)."""
    pair = tuple(value) if isinstance(value, list | tuple) else ()
    if len(pair) != 2 or any(isinstance(b, bool) or not isinstance(b, int | float) for b in pair):
        raise ConfigError(
            f"{source}: optim.betas must be two numbers, e.g. [0.9, 0.999], got {value!r}"
        )
    return pair


def _as_overrides(value: Any, source: str) -> tuple[str, ...]:
    """``model_overrides`` as ``key=value`` strings; one string is one override (a
    tuple of its characters would fail on the first one with a puzzling message)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{source}: model_overrides must be a list of key=value strings, got {value!r}"
        )
    return tuple(value)


def load_train_config(source: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """A YAML file or a shipped training preset (``tiny``, ``synthkitchen-cpu`` ...) with
    ``key=value`` overrides such as ``optim.lr=3e-4`` or ``max_steps=10``."""
    data, label = read_config_data(
        source, overrides, folder="configs/train", what="training config"
    )
    return TrainConfig.from_dict(data, label)
