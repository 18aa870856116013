"""Which projector weights a severity calibration belongs to."""

from __future__ import annotations

import hashlib

import torch

from stepdiff.model.stepdiff import StepDiffModel


def projector_fingerprint(model: StepDiffModel) -> str:
    """Short sha256 of the projector weights, rounded to fp16 first.

    p_same, and so its calibration, depends on the exact projector. Hashing the fp16
    rounding makes a trained fp32 checkpoint and its fp16 export (``export_model``) share
    a fingerprint: rounding an fp16 value to fp16 again changes nothing.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.projector_module.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(str(tuple(tensor.shape)).encode("utf-8"))
        digest.update(tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
