"""Object tags from the frozen ImageNet classifier, filtered by score and by agreement
across a clip's sampled frames (a tag seen in one frame only is usually noise)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from stepdiff.encoders.efficientnet import EfficientNetLiteEncoder
from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.paths import package_file
from stepdiff.video.clip import ClipRef


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in classifier order (first lemma of each synset),
    read from the data files that the ``timm`` package ships (its code is not imported)."""
    synsets = package_file("timm", "data/_info/imagenet_synsets.txt", "ImageNet class names")
    lemmas = synsets.with_name("imagenet_synset_to_lemma.txt")
    lemma_of = dict(line.split("\t", 1) for line in lemmas.read_text().splitlines() if line)
    return tuple(lemma_of[s].split(",")[0].strip() for s in synsets.read_text().split())


@dataclass(frozen=True)
class Tag:
    name: str
    score: float  # mean probability over the sampled frames
    frames: int  # frames in whose top-k the class appears


class ObjectTagger:
    """Clip -> object tags with scores."""

    def __init__(
        self,
        encoder: EfficientNetLiteEncoder | None = None,
        num_frames: int = 8,
        *,
        min_score: float = 0.05,
        min_frames: int = 2,
        top_k: int = 5,
    ) -> None:
        self.encoder = encoder or EfficientNetLiteEncoder()
        self.featurizer = ClipFeaturizer(self.encoder, num_frames)
        self.names = imagenet_class_names()
        self.min_score, self.min_frames, self.top_k = min_score, min_frames, top_k

    def __call__(self, clip: ClipRef) -> list[Tag]:
        probabilities = self.encoder.classify(self.featurizer.frames(clip))  # (F, 1000)
        top = probabilities.topk(self.top_k, dim=1).indices  # (F, k)
        frames_with = torch.zeros(probabilities.shape[1], dtype=torch.long)
        frames_with.scatter_add_(0, top.flatten(), torch.ones(top.numel(), dtype=torch.long))
        mean = probabilities.mean(dim=0)  # (1000,)
        keep = (mean >= self.min_score) & (frames_with >= self.min_frames)
        tags = [
            Tag(self.names[i], float(mean[i]), int(frames_with[i]))
            for i in keep.nonzero().flatten().tolist()
        ]
        return sorted(tags, key=lambda tag: -tag.score)
