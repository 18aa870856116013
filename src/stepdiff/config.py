"""StepDiff model configuration: dataclasses, YAML presets and ``key=value`` overrides.

Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stepdiff.errors import ConfigError, first_line
from stepdiff.llm.aliases import DEFAULT_LLM
from stepdiff.projector import ProjectorConfig
from stepdiff.projector.perceiver import drop_removed_options

DEFAULT_ENCODER = "efficientnet-lite0"


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: PyYAML follows YAML 1.1, where ``1e-4``
    and ``3e-4`` (no dot) are strings, so ``optim.lr=1e-4`` would not be a number."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """YAML text -> Python values, reading ``1e-4`` as a float."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class StepDiffConfig:
    """Which frozen parts to load and how to build the trainable projector."""

    encoder: str = DEFAULT_ENCODER  # alias, Hugging Face id or local folder
    llm: str = DEFAULT_LLM  # alias, GGUF file, Hugging Face id or local folder
    # Weights of the frozen LLM: float32 on CPUs (16-bit matmuls are far slower there),
    # bfloat16 on GPUs. The projector always keeps fp32 weights.
    llm_dtype: str = "float32"  # float32 | bfloat16 | float16
    num_frames: int = 8  # uniformly sampled frames per clip
    prompt_format: str = "auto"  # auto | llama2 | chat | plain
    max_length: int = 1024  # longest prompt + answer, in tokens
    seed: int = 0  # projector initialisation
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: list[str], source: str = "config") -> StepDiffConfig:
        """A copy with ``key=value`` overrides applied (e.g. ``projector.depth=3``)."""
        data = self.to_dict()
        for override in overrides:
            apply_override(data, override)
        return StepDiffConfig.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> StepDiffConfig:
        values = dict(data)
        projector = drop_removed_options(values.pop("projector", {}) or {}, source)
        check_keys(values, cls, source)
        check_keys(projector, ProjectorConfig, f"{source}: projector")
        try:
            config = cls(projector=ProjectorConfig(**projector), **values)
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from None
        check_field_values(config, source)
        return config


# Seeds go to torch.manual_seed, which takes any unsigned 64-bit integer.
SEED_LIMIT = 2**64


def check_field_values(config: Any, source: str, prefix: str = "") -> None:
    """Each field of a config dataclass (sections included) holds its annotated type,
    counts are positive and seeds in range; the error names the dotted key.

    ``key=value`` overrides are parsed as YAML, so ``num_frames=abc`` arrives as a string
    and would otherwise fail deep inside the model, or not at all.
    """
    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        key, value, expected = f"{prefix}{item.name}", getattr(config, item.name), hints[item.name]
        if dataclasses.is_dataclass(expected):
            check_field_values(value, source, f"{key}.")
        else:
            _check_scalar(key, value, expected, source)


def _check_scalar(key: str, value: Any, expected: Any, source: str) -> None:
    """One str, bool or int field (the types a model config holds)."""
    got = f"got {value!r}"
    if expected is str and not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string, {got}")
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false, {got}")
    if expected is not int:
        return
    # bool is an int subclass, but `true` frames is a typo, not a count. Every integer
    # but the seed counts something (frames, tokens, latents, layers ...), where 0 or
    # less is never meant and would fail far from here, or silently.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key == "seed":
        if not (is_int and 0 <= value < SEED_LIMIT):
            raise ConfigError(f"{source}: {key} must be an integer from 0 to 2**64 - 1, {got}")
    elif not (is_int and value >= 1):
        raise ConfigError(f"{source}: {key} must be a positive integer, {got}")


def check_keys(values: dict[str, Any], cls: type, source: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def preset_names(folder: str = "configs") -> list[str]:
    """Shipped YAML presets in a package folder (``configs``, ``configs/train``)."""
    root = importlib.resources.files("stepdiff") / folder
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def read_config_data(
    source: str | Path,
    overrides: list[str] | None,
    *,
    folder: str = "configs",
    what: str = "config",
) -> tuple[dict[str, Any], str]:
    """A YAML file, or a shipped preset in ``folder``, as a mapping with ``key=value``
    overrides applied; and the label (its path) for error messages."""
    path = Path(source)
    if not path.is_file():
        if str(source) not in preset_names(folder):
            raise ConfigError(
                f"{what} {str(source)!r}: no such file or preset "
                f"(presets: {', '.join(preset_names(folder))})"
            )
        path = Path(str(importlib.resources.files("stepdiff") / folder / f"{source}.yaml"))
    try:
        data = parse_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({first_line(error)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    for override in overrides or []:
        apply_override(data, override)
    return data, str(path)


def load_config(
    source: str | Path | None = None, overrides: list[str] | None = None
) -> StepDiffConfig:
    """Load a YAML file or a shipped preset name (``tiny``, ``cpu-default``), then apply
    ``key=value`` overrides such as ``num_frames=4`` or ``projector.depth=3``."""
    if source is None:
        data: dict[str, Any] = {}
        for override in overrides or []:
            apply_override(data, override)
        return StepDiffConfig.from_dict(data, "defaults")
    data, label = read_config_data(source, overrides)
    return StepDiffConfig.from_dict(data, label)


def apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r}: expected key=value")
    target = data
    *parents, leaf = key.split(".")
    for parent in parents:
        target = target.setdefault(parent, {})
        if not isinstance(target, dict):
            raise ConfigError(f"override {override!r}: {parent!r} is not a section")
    target[leaf] = parse_yaml(text)
