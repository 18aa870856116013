"""Which StepDiff model a command loads, and how it runs it: the one option group that
``ask``, ``report``, ``rank``, ``calibrate``, ``demo``, ``eval`` and ``serve`` share
(each offers the fields it needs; see :func:`stepdiff.options.expand_options`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stepdiff.errors import ConfigError
from stepdiff.options import option

if TYPE_CHECKING:
    from stepdiff.model.stepdiff import StepDiffModel


@dataclass(frozen=True)
class ModelOptions:
    config: str | None = option(
        "--config", "-c", default=None, help="YAML config file or preset (cpu-default, tiny)."
    )
    checkpoint: Path | None = option(
        "--model",
        "-m",
        default=None,
        help="Folder of a saved StepDiff model (projector + config).",
    )
    overrides: list[str] | None = option(
        "--set",
        default=None,
        help="Override a config key, e.g. --set num_frames=4 (repeatable).",
    )
    encoder: str | None = option(
        "--encoder",
        default=None,
        help="Frame encoder: efficientnet-lite0, tiny, HF id or folder.",
    )
    llm: str | None = option(
        "--llm", default=None, help="LLM: smollm2-135m-instruct, GGUF file, HF id or folder."
    )
    frames: int | None = option("--frames", default=None, help="Frames sampled per clip.")
    cache: bool = option("--cache/--no-cache", default=True, help="Cache frozen features on disk.")
    llamacpp: bool = option(
        "--llamacpp",
        default=False,
        help="Run the LLM through llama.cpp (GGUF LLMs; needs the llamacpp extra): answers "
        "and scores in the GGUF's memory, answers much faster on CPUs; close to but not "
        "always token-identical with the default.",
    )

    def config_overrides(self) -> list[str]:
        """``--set`` overrides plus the shortcut flags, as ``key=value`` strings."""
        flags = list(self.overrides or [])
        flags += [f"encoder={self.encoder}"] if self.encoder else []
        flags += [f"llm={self.llm}"] if self.llm else []
        if self.frames is not None and self.frames < 1:
            raise ConfigError(f"--frames must be >= 1, got {self.frames}")
        flags += [f"num_frames={self.frames}"] if self.frames is not None else []
        return flags

    def folder(self) -> Path | None:
        """The checkpoint folder these options load (the shipped model's when nothing is
        named; see ``resolve_model_config``), or None for an untrained model built from a
        config."""
        from stepdiff.model_files import packaged_model_dir

        if self.checkpoint is not None:
            return self.checkpoint
        if self.config is None and not self.config_overrides():
            return packaged_model_dir()
        return None

    def name(self) -> str:
        """A readable name of the model: its folder's name, else its config's."""
        folder = self.folder()
        if folder is not None:
            return folder.resolve().name
        return Path(self.config).stem if self.config is not None else "cpu-default"

    def load(self, *, llm: bool = True) -> StepDiffModel:
        """The model these options name (the shipped one by default), encoder and LLM
        frozen. ``llm=False``: the LLM deferred and neither it nor llama.cpp loaded, for
        work that needs the projector alone."""
        from concurrent.futures import wait

        from stepdiff.encoders.cache import FeatureCache
        from stepdiff.model.build import build_model
        from stepdiff.model_files import resolve_model_config

        config, folder = resolve_model_config(self.config, self.checkpoint, self.config_overrides())
        # llama.cpp loads its GGUF while the projector, tokenizer and encoder load here.
        answerer = None
        if self.llamacpp and llm:
            from stepdiff.llm.llamacpp_answers import LlamaCppAnswerer

            answerer = LlamaCppAnswerer.start_loading(config.llm)
        # Through llama.cpp, the torch LLM is not needed: deferred, it never loads.
        try:
            model = build_model(
                config,
                feature_cache=FeatureCache() if self.cache else None,
                checkpoint=folder,
                defer_llm=self.llamacpp or not llm,
            )
        except BaseException:
            # While it loads, llama.cpp points stdout and stderr at /dev/null: the error
            # must be printed after that.
            if answerer is not None:
                wait([answerer])
            raise
        if answerer is not None:
            model.use_llamacpp(answerer=answerer.result())
        return model


SHIPPED_MODEL = ModelOptions()  # no flags: the shipped model
