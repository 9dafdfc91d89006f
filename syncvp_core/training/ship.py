"""Write the model bundle of a (possibly still running) training run, e.g. as the shipped default checkpoint.

    python -m syncvp_core.training.ship --config default_tiny run_dir=runs/default_tiny \\
        --out syncvp_core/assets/default/syncvp_tiny.safetensors --fp16

Uses the latest exported EMA weights of each stage (written at every checkpoint), so it can run while the
joint stage is still training. ``--fp16`` stores float16 weights (half the size; the Predictor loads them
into float32).
"""
from __future__ import annotations

import argparse

import torch

from .config import load_train_config
from .dist import DistInfo
from .pipeline import Session


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--ae-run", default=None, help="take the autoencoders from this run directory")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args(argv)
    s = Session(load_train_config(a.config, a.overrides), DistInfo())
    out = s.bundle(a.out, torch.float16 if a.fp16 else torch.float32, a.ae_run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
