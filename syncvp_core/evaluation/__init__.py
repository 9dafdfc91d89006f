"""Forecast evaluation: metrics, baselines, rosbag replay and reports.

Modules (one concept each):

* :mod:`.metrics`   — PSNR, SSIM, depth errors, per-horizon aggregation (numpy/torch, CPU).
* :mod:`.lpips`     — LPIPS (AlexNet, v0.1 heads) in torch.
* :mod:`.fvd`       — I3D (Kinetics-400) in torch and the Fréchet distance.
* :mod:`.baselines` — copy-last-frame, constant-velocity and optical-flow forecasters.
* :mod:`.windows`   — frame spacing at the model rate, sliding windows, the window plan.
* :mod:`.methods`   — the rows of an evaluation (model, baselines registry, resize ceiling).
* :mod:`.scoring`   — per-horizon metrics, FVD and extra metric blocks for one window at a time.
* :mod:`.protocol`  — the evaluation options, the recorded protocol and its hash.
* :mod:`.replay`    — the window loop over synchronised RGB-D frames (bags or any frame stream).
* :mod:`.report`    — metrics.json, report.md, plots and the side-by-side GIF.
* :mod:`.dataset`   — the Cityscapes-style folder protocol (2 -> 28 at 128x128).
* :mod:`.heldout`   — a checkpoint scored on the held-out tails of its training sequences.
* :mod:`.cli`       — ``syncvp eval-bag``, ``syncvp eval-dataset``, ``syncvp eval-heldout``, ``syncvp demo``.

Pretrained weights of the LPIPS / I3D networks are loaded by :mod:`syncvp_core.pretrained` (shared with
training's perceptual losses; training never imports this package).
"""
