from stepdiff.projector.perceiver import PerceiverProjector, ProjectorConfig

__all__ = ["PerceiverProjector", "ProjectorConfig"]
