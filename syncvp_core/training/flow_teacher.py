"""A classical optical-flow teacher for the anchored decoder's flow head (``ae.flow_teacher_weight``).

A photometric loss alone finds motion slowly: the warp's gradient only sees about a pixel around the
current flow, and the head starts at zero flow. During autoencoder training the true future is known, so
OpenCV's DIS flow from each future frame to the anchor (the same backward convention as
:mod:`syncvp_core.warp`: output pixel p reads the anchor at p + flow) is a cheap, dense target for the flow
the decoder should output. It is a training aid only: the deployed decoder computes its flow from the
latent, and the DIS-based forecaster is reported as a baseline of its own (``optical_flow`` rows).

Flow is computed on the model-resolution colour frames (grey), also for the depth autoencoder, whose
motion is the same camera and scene motion.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _dis():
    try:
        import cv2
    except ImportError as e:  # opencv is in the eval extra
        raise RuntimeError("ae.flow_teacher_weight > 0 needs OpenCV: pip install opencv-python-headless "
                           "(part of the 'eval' extra)") from e
    return cv2, cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _grey(x: Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> uint8 grey (..., H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(3, 1, 1)
    g = ((x.clamp(-1, 1) + 1.0) * 127.5 * w).sum(dim=-3)
    return g.round().to(torch.uint8).cpu().numpy()


def teacher_flow(frames: Tensor, anchor: Tensor) -> Tensor:
    """frames (B, 3, T, H, W) and anchor (B, 3, H, W), colour in [-1, 1] -> (B, 2, T, H, W) backward flow in
    normalised image units (x then y), from every frame to the anchor."""
    cv2, dis = _dis()
    b, _, t, h, w = frames.shape
    f = _grey(frames.permute(0, 2, 1, 3, 4))  # (B, T, H, W)
    a = _grey(anchor)  # (B, H, W)
    out = np.zeros((b, t, h, w, 2), np.float32)
    for i in range(b):
        for j in range(t):
            out[i, j] = dis.calc(f[i, j], a[i], None)
    flow = torch.from_numpy(out).permute(0, 4, 1, 2, 3)  # (B, 2, T, H, W) in pixels
    scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1, 1)
    return (flow * scale).to(frames.device)


def flow_teacher_loss(fields: Tensor, teacher: Tensor) -> Tensor:
    """Mean L1 between the decoder's flow channels (0, 1) and the teacher, in pixels of the model frame so
    the weight does not depend on the resolution."""
    h, w = fields.shape[-2:]
    scale = torch.tensor([w / 2.0, h / 2.0], dtype=fields.dtype, device=fields.device).view(1, 2, 1, 1, 1)
    return ((fields[:, 0:2] - teacher) * scale).abs().mean()
