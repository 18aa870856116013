"""Which projector weights a severity calibration belongs to."""

from __future__ import annotations

import hashlib

import torch

from stepdiff.model.build import IDENTITY_STATISTICS
from stepdiff.model.stepdiff import StepDiffModel

# Weights that only serve a training loss: the LLM never sees what they compute, so they
# cannot change p_same.
TRAINING_ONLY_PREFIXES = ("components.compare.comparison_readout.",)


def projector_fingerprint(model: StepDiffModel) -> str:
    """Short sha256 of the projector weights that change the scores, rounded to fp16 first.

    p_same, and so its calibration, depends on the exact projector. Hashing the fp16
    rounding makes a trained fp32 checkpoint and its fp16 export (``export_model``) share
    a fingerprint: rounding an fp16 value to fp16 again changes nothing. Left out:

    - statistics at the identity value a checkpoint without them loads with
      (``IDENTITY_STATISTICS``), so a projector saved before a buffer existed and the
      same projector loaded with that buffer at identity share a fingerprint;
    - weights that serve only a training loss (``TRAINING_ONLY_PREFIXES``).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.projector_module.state_dict().items()):
        if name.startswith(TRAINING_ONLY_PREFIXES) or _at_identity(name, tensor):
            continue
        digest.update(name.encode("utf-8"))
        digest.update(str(tuple(tensor.shape)).encode("utf-8"))
        digest.update(tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _at_identity(name: str, tensor: torch.Tensor) -> bool:
    identity = IDENTITY_STATISTICS.get(name)
    return identity is not None and torch.equal(tensor, identity(tensor))
