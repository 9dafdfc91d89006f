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
from typing import Any

import numpy as np

from .figures import pyplot, save
from .methods import MODEL

NAME = "uncertainty"  # the block's key in metrics.json ("blocks")
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


class UncertaintyBlock:
    """The evaluation's uncertainty section (a :class:`~.scoring.MetricBlock`): for every scenario, the model
    row's depth std (``Forecast.depth_std``, present when the model drew N > 1 samples) against the truth."""

    name = NAME

    def __init__(self, horizon: int, num_samples: int, seed: int = 0) -> None:
        self.horizon, self.num_samples, self.seed = horizon, num_samples, seed
        self._stats: dict[str, UncertaintyStats] = {}

    def update(self, window: Any, forecasts: dict) -> None:
        for scenario, by_method in forecasts.items():
            fc = by_method.get(MODEL)
            if fc is None or getattr(fc, "depth_std", None) is None:
                continue
            if scenario not in self._stats:
                self._stats[scenario] = UncertaintyStats(self.horizon, seed=self.seed)
            self._stats[scenario].add(window.fut_depth, fc.depth, fc.depth_std)

    def summary(self) -> dict:
        return {"num_samples": self.num_samples,
                "scenarios": {name: st.summary() for name, st in self._stats.items()}}


def plot_sparsification(summary: dict, path: Path) -> bool:
    """Sparsification curves vs their oracles, one colour per scenario (horizon steps pooled). False when
    there is nothing to draw."""
    drawn = {k: v for k, v in summary.get("scenarios", {}).items() if v.get("ause_m") is not None}
    if not drawn:
        return False
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (scenario, s) in enumerate(drawn.items()):
        f = np.asarray(s["fractions_removed"]) * 100
        colour = f"C{i}"
        ax.plot(f, s["sparsification_mae_m"], "o-", ms=3, color=colour,
                label=f"{scenario}: by predicted std (AUSE {s['ause_m']:.3f} m)")
        ax.plot(f, s["oracle_mae_m"], "--", color=colour, label=f"{scenario}: oracle (by true error)")
    ax.set_xlabel("most uncertain pixels removed (%)")
    ax.set_ylabel("depth MAE of the rest (m)")
    ax.set_title("Depth uncertainty: sparsification (lower = better)")
    return save(fig, path, ax)


def report_section(summary: dict, out_dir: Path) -> list[str]:
    """The report's uncertainty section: per scenario a calibration table per horizon step with AUSE; writes
    ``plots/sparsification.png``."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    def m(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["## Depth uncertainty (model)", "",
             f"{summary['num_samples']} samples per forecast: the model row above is their mean, the "
             "uncertainty their per-pixel std. A Gaussian forecast that knows its own error has 68.3 % of the "
             "true depth within 1 std and 95.4 % within 2 std; fewer = over-confident, more = too cautious. "
             "AUSE: area between the sparsification curve (error left after removing the most uncertain "
             "pixels) and the oracle's (removing the largest errors); metres, lower is better.", ""]
    if not summary.get("scenarios"):
        return lines + ["No forecast carried a spread (did every model forecast fail?).", ""]
    for scenario, s in summary["scenarios"].items():
        lines += [f"### {scenario}", "",
                  "| step | pixels | within 1 std | within 2 std | MAE (m) | mean std (m) | AUSE (m) |",
                  "|---|---|---|---|---|---|---|"]
        for h in s["per_horizon"]:
            lines.append(f"| h{h['k']} | {h['pixels']} | {pct(h['within_1std'])} | {pct(h['within_2std'])} | "
                         f"{m(h['mae_m'])} | {m(h['mean_std_m'])} | {m(h['ause_m'])} |")
        lines += [f"| all | {sum(h['pixels'] for h in s['per_horizon'])} | {pct(s['within_1std'])} | "
                  f"{pct(s['within_2std'])} | | | {m(s['ause_m'])} |", ""]
    plot = out_dir / "plots" / "sparsification.png"
    if plot_sparsification(summary, plot):
        lines += [f"![sparsification]({plot.relative_to(out_dir).as_posix()})", ""]
    return lines
