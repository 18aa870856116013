from stepdiff.model.build import build_model, load_model
from stepdiff.model.splice import splice_video_embeddings
from stepdiff.model.stepdiff import StepDiffModel

__all__ = ["StepDiffModel", "build_model", "load_model", "splice_video_embeddings"]
