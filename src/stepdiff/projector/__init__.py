"""The trainable Perceiver projector that turns frozen encoder tokens into LLM video tokens."""

from stepdiff.projector.perceiver import PerceiverProjector, ProjectorConfig

__all__ = ["PerceiverProjector", "ProjectorConfig"]
