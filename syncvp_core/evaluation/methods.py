"""The rows of an evaluation: the model, the baselines and the resize ceiling, behind one interface.

A *method* turns a :class:`~.windows.Window` and a sensor scenario into a
:class:`~.baselines.Forecast` (or raises ValueError when it cannot: counted as a failed window with the
message). To add a baseline row, write a class with ``name``, ``description`` and
``predict(context_rgb, context_depth, horizon)`` (see :mod:`.baselines`) and add it to :data:`BASELINES`;
``--config`` / :class:`~.protocol.EvalProtocol` ``baselines`` then accept its name, the report labels it
with ``description``, and every metric is computed for it. A baseline returns None for a modality it never
saw in the scenario (reported N/A, never a made-up number).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .baselines import (
    ConstantVelocity,
    CopyLast,
    FlowExtrapolation,
    Forecast,
    SceneFlowExtrapolation,
    resize_ceiling,
)
from .windows import Window

MODEL = "model"
CEILING = "resize_ceiling"

# name -> factory(context_frames) for every baseline row the protocol can ask for.
BASELINES: dict[str, Callable[[int], Any]] = {
    "copy_last": CopyLast,
    "const_velocity": ConstantVelocity,
    "optical_flow": FlowExtrapolation,
    "scene_flow": SceneFlowExtrapolation,
}


class Method(Protocol):
    name: str

    def forecast(self, window: Window, scenario: str) -> Forecast: ...


class ModelForecaster:
    """The model row offline: a :class:`~syncvp_core.predictor.Predictor` run on the window's context."""

    name = MODEL

    def __init__(self, predictor: Any, horizon: int, steps: int | None, num_samples: int = 1) -> None:
        self.predictor, self.horizon, self.steps, self.num_samples = predictor, horizon, steps, num_samples

    def forecast(self, window: Window, scenario: str) -> Forecast:
        cr, cd = window.context(scenario)
        # num_samples > 1: the forecast is the samples' mean and carries their depth std (.uncertainty).
        out = self.predictor.predict(cr, cd, horizon=self.horizon, steps=self.steps, seed=window.seed,
                                     num_samples=self.num_samples)
        return Forecast(out.rgb, out.depth, out.mode, out.spread.depth_std if out.spread is not None else None)


class Baseline:
    """A baseline row: a :data:`BASELINES` entry adapted to :class:`Method`."""

    def __init__(self, name: str, context_frames: int, horizon: int) -> None:
        self.name, self.horizon = name, horizon
        self.impl = BASELINES[name](context_frames)

    def forecast(self, window: Window, scenario: str) -> Forecast:
        cr, cd = window.context(scenario)
        return self.impl.predict(cr, cd, self.horizon)


class ResizeCeiling:
    """Not a forecast: the real future through the model resolution and back (what no model at that
    resolution can beat when scored at sensor resolution). The same for every scenario."""

    name = CEILING

    def __init__(self, model_hw: tuple[int, int]) -> None:
        self.model_hw = model_hw
        self._cache: tuple[int, Forecast] | None = None

    def forecast(self, window: Window, scenario: str) -> Forecast:
        if self._cache is None or self._cache[0] != window.index:
            self._cache = (window.index, resize_ceiling(window.fut_rgb, window.fut_depth, self.model_hw))
        return self._cache[1]
