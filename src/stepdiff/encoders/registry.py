"""Build a frame encoder from a short text spec (config files and the CLI use these)."""

from __future__ import annotations

from stepdiff.encoders.base import FrameEncoder
from stepdiff.errors import ConfigError
from stepdiff.specs import parse_int_options

DEFAULT_ENCODER = "efficientnet-lite0"
_TINY_KEYS = ("dim", "image_size", "grid", "seed")


def build_frame_encoder(spec: str = DEFAULT_ENCODER) -> FrameEncoder:
    """The frozen encoder named by ``spec``.

    ``"efficientnet-lite0"`` (default, packaged ImageNet weights), ``"tiny"`` or
    ``"tiny:dim=16,grid=2,image_size=32,seed=0"`` (random-init, for tests), otherwise a
    Hugging Face model id or local model folder.
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("encoder: empty encoder name")
    if spec == DEFAULT_ENCODER:
        from stepdiff.encoders.efficientnet import EfficientNetLiteEncoder

        return EfficientNetLiteEncoder()
    if spec == "tiny" or spec.startswith("tiny:"):
        from stepdiff.encoders.tiny import TinyFrameEncoder

        try:
            return TinyFrameEncoder(**parse_int_options(spec, _TINY_KEYS, "encoder"))
        except ValueError as error:
            raise ConfigError(f"encoder {spec!r}: {error}") from None
    from stepdiff.encoders.hf import HFVisionEncoder

    return HFVisionEncoder(spec)
