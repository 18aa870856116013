"""The StepDiff model: frozen encoder features -> Perceiver projector ->
video tokens spliced into the prompt -> frozen LLM; answer loss, generation, log-likelihood
and P(YES)."""

from stepdiff.model.build import build_model, load_model
from stepdiff.model.splice import splice_video_embeddings
from stepdiff.model.stepdiff import StepDiffModel

__all__ = ["StepDiffModel", "build_model", "load_model", "splice_video_embeddings"]
