"""N sensor dropout/return cycles through the node process: the fraction that switched mode and kept
predicting. A mode of bench/soak.py (same node, driver and options):

    python bench/dropout_cycles.py [N=100] [--off-s 1.5] [--on-s 2.0]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    n = args.pop(0) if args and not args[0].startswith("-") else "100"
    raise SystemExit(main(["--dropout-cycles", n, "--log", "dropout_node.log", *args]))
