"""Is the predicted spread worth trusting? Calibration and sparsification of the per-pixel depth std.

Scored when the model draws several samples per forecast (``eval-bag --num-samples N``, N > 1): the
forecast is the samples' mean, its uncertainty their per-pixel std (:mod:`syncvp_core.spread`).

* **Calibration**, per horizon step: the fraction of valid true depth pixels with ``|true - mean| <= 1 std``
  and ``<= 2 std``. A Gaussian forecast that knows its error would give 68.3 % and 95.4 %; lower = the spread
  is over-confident (too narrow), higher = too cautious.
* **Sparsification** (Ilg et al., ECCV 2018): remove the fraction f of pixels the model is least sure of
  (largest std) and measure the mean absolute depth error of the rest, for f = 0 .. 0.95. The *oracle*
  removes the pixels with the largest true error (the best any ordering can do). **AUSE** = area between the
  two curves (metres, lower = the std ranks errors better; 0 = perfect ranking). A std with no information
  gives a flat curve (AUSE = area under the oracle's gap).

Sparsification needs all pixels of a step jointly ranked, so a fixed random subset of each frame's valid
pixels (``max_pixels_per_frame``, deterministic) is kept; calibration counts every pixel.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

REMOVAL_FRACTIONS = np.round(np.arange(0.0, 0.951, 0.05), 2)
GAUSSIAN_WITHIN = {1: 0.6827, 2: 0.9545}


def sparsification_curve(err: np.ndarray, order_key: np.ndarray, fractions=REMOVAL_FRACTIONS) -> np.ndarray:
    """Mean of ``err`` over the pixels left after removing the fraction f with the largest ``order_key``."""
    err = np.asarray(err, np.float64).ravel()
    if err.size == 0:
        return np.full(len(fractions), np.nan)
    order = np.argsort(np.asarray(order_key).ravel(), kind="stable")  # most certain first
    csum = np.cumsum(err[order])
    kept = np.maximum(1, np.round((1.0 - np.asarray(fractions)) * err.size).astype(int))
    return csum[kept - 1] / kept


def ause(err: np.ndarray, std: np.ndarray, fractions=REMOVAL_FRACTIONS) -> tuple[np.ndarray, np.ndarray, float]:
    """(curve by std, oracle curve by error, area between them over ``fractions``)."""
    curve = sparsification_curve(err, std, fractions)
    oracle = sparsification_curve(err, err, fractions)
    gap = curve - oracle
    area = float(np.sum((gap[1:] + gap[:-1]) * np.diff(fractions)) / 2.0)
    return curve, oracle, area


class UncertaintyStats:
    """Accumulates (true depth, mean, std) per horizon step over an evaluation; :meth:`summary` scores."""

    def __init__(self, horizon: int, max_pixels_per_frame: int = 4096, seed: int = 0) -> None:
        self.horizon = horizon
        self.max_pixels = max_pixels_per_frame
        self._rng = np.random.default_rng(seed)
        self._count = np.zeros(horizon, np.int64)
        self._within = {1: np.zeros(horizon, np.int64), 2: np.zeros(horizon, np.int64)}
        self._err: list[list[np.ndarray]] = [[] for _ in range(horizon)]
        self._std: list[list[np.ndarray]] = [[] for _ in range(horizon)]

    def add(self, true_depth: np.ndarray, mean_depth: np.ndarray, std_depth: np.ndarray) -> None:
        """(K, H, W) metres each (NaN / <= 0 true depth = no ground truth)."""
        if not (true_depth.shape == mean_depth.shape == std_depth.shape) or true_depth.shape[0] > self.horizon:
            raise ValueError(f"true {true_depth.shape}, mean {mean_depth.shape} and std {std_depth.shape} must "
                             f"be equal (K, H, W) with K <= {self.horizon}")
        for k in range(true_depth.shape[0]):
            t, m, s = true_depth[k], mean_depth[k], std_depth[k]
            ok = np.isfinite(t) & (t > 0) & np.isfinite(m) & np.isfinite(s)
            err = np.abs(t[ok] - m[ok]).astype(np.float32)
            std = s[ok].astype(np.float32)
            self._count[k] += err.size
            for n in (1, 2):
                self._within[n][k] += int(np.count_nonzero(err <= n * std))
            if err.size > self.max_pixels:
                keep = self._rng.choice(err.size, self.max_pixels, replace=False)
                err, std = err[keep], std[keep]
            self._err[k].append(err)
            self._std[k].append(std)

    def summary(self) -> dict:
        steps = []
        all_err, all_std = [], []
        for k in range(self.horizon):
            err = np.concatenate(self._err[k]) if self._err[k] else np.zeros(0, np.float32)
            std = np.concatenate(self._std[k]) if self._std[k] else np.zeros(0, np.float32)
            all_err.append(err)
            all_std.append(std)
            n = int(self._count[k])
            _, _, area = ause(err, std) if err.size else (None, None, float("nan"))
            steps.append({
                "k": k + 1, "pixels": n,
                "within_1std": self._within[1][k] / n if n else None,
                "within_2std": self._within[2][k] / n if n else None,
                "mae_m": float(err.mean()) if err.size else None,
                "mean_std_m": float(std.mean()) if std.size else None,
                "ause_m": area if err.size else None,
            })
        err, std = np.concatenate(all_err), np.concatenate(all_std)
        total = int(self._count.sum())
        curve, oracle, area = ause(err, std)
        return {
            "per_horizon": steps,
            "within_1std": float(self._within[1].sum() / total) if total else None,
            "within_2std": float(self._within[2].sum() / total) if total else None,
            "gaussian_within": {"1std": GAUSSIAN_WITHIN[1], "2std": GAUSSIAN_WITHIN[2]},
            "fractions_removed": [float(f) for f in REMOVAL_FRACTIONS],
            "sparsification_mae_m": _floats(curve),
            "oracle_mae_m": _floats(oracle),
            "ause_m": area if err.size else None,
            "pixels_ranked": int(err.size),
        }


def _floats(a: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in a]


def plot_sparsification(summary: dict, path: Path) -> bool:
    """Sparsification curve vs oracle (all horizon steps pooled). False when there is nothing to draw."""
    if summary.get("ause_m") is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = np.asarray(summary["fractions_removed"]) * 100
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(f, summary["sparsification_mae_m"], "o-", label="remove by predicted std")
    ax.plot(f, summary["oracle_mae_m"], "k--", label="oracle (remove by true error)")
    ax.fill_between(f, summary["oracle_mae_m"], summary["sparsification_mae_m"], alpha=0.15,
                    label=f"AUSE = {summary['ause_m']:.3f} m")
    ax.set_xlabel("most uncertain pixels removed (%)")
    ax.set_ylabel("depth MAE of the rest (m)")
    ax.set_title("Depth uncertainty: sparsification")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown_section(summary: dict, num_samples: int, plot: Path | None, out_dir: Path) -> list[str]:
    """The report's uncertainty section: calibration table per horizon step, AUSE, the plot."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    def m(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["## Depth uncertainty (model, full scenario)", "",
             f"{num_samples} samples per forecast; forecast = their mean, uncertainty = their per-pixel std. "
             "A Gaussian forecast that knows its own error has 68.3 % of the true depth within 1 std and "
             "95.4 % within 2 std; fewer = over-confident. AUSE: area between the sparsification curve and "
             "the oracle (m, lower is better).", "",
             "| step | pixels | within 1 std | within 2 std | MAE (m) | mean std (m) | AUSE (m) |",
             "|---|---|---|---|---|---|---|"]
    for s in summary["per_horizon"]:
        lines.append(f"| h{s['k']} | {s['pixels']} | {pct(s['within_1std'])} | {pct(s['within_2std'])} | "
                     f"{m(s['mae_m'])} | {m(s['mean_std_m'])} | {m(s['ause_m'])} |")
    lines.append(f"| all | {sum(s['pixels'] for s in summary['per_horizon'])} | {pct(summary['within_1std'])} | "
                 f"{pct(summary['within_2std'])} | | | {m(summary['ause_m'])} |")
    if plot is not None:
        lines += ["", f"![sparsification]({plot.relative_to(out_dir).as_posix()})"]
    return lines + [""]
