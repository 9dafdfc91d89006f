"""The street scene: a road along the ego path with lanes, sidewalks, buildings, poles, trees, parked and
moving cars and pedestrians (right-hand traffic)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .mjcf import SceneBuilder, car_geoms, person_geoms, rand_color
from .motion import Polyline

PARK_W = 2.3  # a parking strip on both sides, outside the driving lanes


@dataclass
class _Road:
    lanes: int      # per direction
    lane_w: float
    walk_w: float   # sidewalk width

    @property
    def half(self) -> float:
        return self.lanes * self.lane_w + PARK_W


def _normal(yaw: float) -> np.ndarray:
    return np.array([-math.sin(yaw), math.cos(yaw)])


def _road_surface(sc: SceneBuilder, path: Polyline, road: _Road) -> None:
    """Road, kerbs/sidewalks and dashed centre line as short boxes that follow the path."""
    rng = sc.rng
    grey = rng.uniform(0.18, 0.32)
    asphalt = sc.material((grey, grey, grey * 1.02), "flat", mark="random", random=0.08,
                          markrgb=(grey * 1.5,) * 3, repeat=(0.5, 0.5), width=128, texuniform=True)
    stripe = sc.material((0.85, 0.85, 0.8) if rng.random() < 0.7 else (0.9, 0.75, 0.2))
    w = rng.uniform(0.45, 0.75)
    walk = sc.material((w, w, w * 0.97), "checker", rgb2=(w * 0.85,) * 3, repeat=(3, 3))
    seg = 3.0
    pts, yaws = path.at(np.arange(path.s[0], path.s[-1], seg) + seg / 2)
    for k, ((x, y), yaw) in enumerate(zip(pts, yaws)):
        n = _normal(yaw)
        sc.box((x, y, 0.01), (seg / 2 + 0.15, road.half, 0.01), yaw, asphalt)
        for side in (-1, 1):
            c = np.array([x, y]) + side * n * (road.half + road.walk_w / 2)
            sc.box((c[0], c[1], 0.08), (seg / 2 + 0.15, road.walk_w / 2, 0.08), yaw, walk)
        if k % 2 == 0:
            sc.box((x, y, 0.021), (1.2, 0.08, 0.002), yaw, stripe)


def _buildings(sc: SceneBuilder, path: Polyline, road: _Road) -> int:
    """Buildings along both sides, clear of the road everywhere along the path."""
    rng = sc.rng
    facade_mats = []
    for _ in range(int(rng.integers(3, 7))):
        wall = rand_color(rng, 0.25, 0.8, 0.35)
        win = np.clip(wall * rng.uniform(0.2, 0.5) + rng.uniform(0, 0.15, 3), 0, 1)
        facade_mats.append(sc.material(wall, "checker", rgb2=win, repeat=(1, 1), texuniform=True,
                                       mark="edge" if rng.random() < 0.5 else "none", markrgb=wall * 0.8))
    clearance = road.half + road.walk_w + 0.3
    n_build = 0
    for side in (-1, 1):
        s = path.s[0] + rng.uniform(0, 10)
        while s < path.s[-1]:
            front, depth = rng.uniform(6, 22), rng.uniform(6, 16)
            height = rng.uniform(4, 30) if rng.random() < 0.85 else rng.uniform(30, 60)
            setback = rng.uniform(0.5, 8)
            (p,), (yaw,) = path.at([s + front / 2])
            n = _normal(yaw)
            c = p + side * n * (clearance + setback + depth / 2)
            t = np.array([math.cos(yaw), math.sin(yaw)])
            corners = np.array([c + a * t * front / 2 + b * n * depth / 2 for a in (-1, 1) for b in (-1, 1)])
            if path.distance(np.vstack([corners, c[None]])).min() > clearance and rng.random() < 0.9:
                sc.box((c[0], c[1], height / 2), (front / 2, depth / 2, height / 2), yaw,
                       facade_mats[int(rng.integers(len(facade_mats)))])
                n_build += 1
            s += front + rng.uniform(0, 8)
    return n_build


def _poles_and_trees(sc: SceneBuilder, path: Polyline, road: _Road) -> tuple[int, int]:
    """Poles (street lights, signs) and trees on the sidewalks."""
    rng = sc.rng
    pole = sc.material(rand_color(rng, 0.2, 0.6, 0.1), specular=0.4)
    trunk = sc.material((0.35, 0.25, 0.15))
    leaf = sc.material(np.clip([0.15, 0.45, 0.12] + rng.uniform(-0.08, 0.08, 3), 0, 1), "flat", mark="random",
                       random=0.3, markrgb=(0.1, 0.3, 0.08))
    n_poles = n_trees = 0
    for side in (-1, 1):
        s = path.s[0] + rng.uniform(0, 15)
        while s < path.s[-1]:
            (p,), (yaw,) = path.at([s])
            n = _normal(yaw)
            if rng.random() < 0.55:
                c = p + side * n * (road.half + 0.6)
                if path.distance(c[None])[0] > road.half + 0.3:
                    h = rng.uniform(3.5, 8.0)
                    sc.cyl((c[0], c[1], h / 2), rng.uniform(0.06, 0.15), h / 2, pole)
                    n_poles += 1
            else:
                c = p + side * n * (road.half + road.walk_w * 0.85)
                if path.distance(c[None])[0] > road.half + 0.8:
                    h = rng.uniform(2.0, 4.0)
                    sc.cyl((c[0], c[1], h / 2), 0.15, h / 2, trunk)
                    sc.sphere((c[0], c[1], h + 1.0), rng.uniform(1.0, 2.2), leaf, (1, 1, rng.uniform(0.8, 1.4)))
                    n_trees += 1
            s += rng.uniform(8, 30)
    return n_poles, n_trees


def _cars(sc: SceneBuilder, path: Polyline, road: _Road, ego_s: np.ndarray, ego_v: np.ndarray) -> int:
    """Parked cars, cars ahead pulling away, oncoming cars; returns how many move."""
    rng = sc.rng
    glass = sc.material((0.1, 0.12, 0.15), specular=0.8)
    tyre = sc.material((0.05, 0.05, 0.05))
    car_mats = [sc.material(rand_color(rng, 0.1, 0.9, 0.8), specular=0.6) for _ in range(4)]

    def car() -> list[str]:
        return car_geoms(rng, car_mats[int(rng.integers(4))], glass, tyre)

    for _ in range(int(rng.integers(2, 8))):  # parked
        s = rng.uniform(path.s[0], path.s[-1])
        side = rng.choice([-1, 1])
        (p,), (yaw,) = path.at([s])
        c = p + side * _normal(yaw) * (road.half - PARK_W / 2)
        if path.distance(c[None])[0] > road.half - PARK_W + 0.3:  # still in its strip on a bend
            sc.mover(car(), dict(kind="static", xy=c.tolist(), yaw=float(yaw)))
    n_moving = 0
    for _ in range(int(rng.integers(1, 5))):  # same direction, pulling away from the ego camera
        s0 = ego_s[0] + rng.uniform(12, 60)
        v = float(np.max(ego_v)) + rng.uniform(1.0, 3.0)  # m/s
        lane = int(rng.integers(road.lanes))
        sc.mover(car(), dict(kind="path", s0=s0, ds=v, offset=-(lane + 0.5) * road.lane_w, reverse=False))
        n_moving += 1
    for _ in range(int(rng.integers(1, 6))):  # oncoming
        s0 = ego_s[0] + rng.uniform(20, 150)
        v = rng.uniform(0.4, 1.4) * float(np.mean(ego_v) + 0.3)  # m/s
        lane = int(rng.integers(road.lanes))
        sc.mover(car(), dict(kind="path", s0=s0, ds=-v, offset=(lane + 0.5) * road.lane_w, reverse=True))
        n_moving += 1
    return n_moving


def _pedestrians(sc: SceneBuilder, road: _Road, ego_s: np.ndarray) -> int:
    rng = sc.rng
    skin = sc.material(np.clip(np.array([0.8, 0.6, 0.45]) * rng.uniform(0.4, 1.1), 0, 1))
    n = int(rng.integers(2, 10))
    for _ in range(n):
        side = rng.choice([-1, 1])
        off = side * (road.half + road.walk_w * rng.uniform(0.2, 0.5))
        v = rng.uniform(0.8, 1.6) * rng.choice([-1, 1])  # m/s
        geoms = person_geoms(sc.material(rand_color(rng, 0.1, 0.8, 0.7)), skin, rng)
        sc.mover(geoms, dict(kind="path", s0=ego_s[0] + rng.uniform(0, 80), ds=v, offset=off, reverse=v < 0))
    return n


def build_street(sc: SceneBuilder, path: Polyline, ego_s: np.ndarray, ego_v: np.ndarray, info: dict) -> float:
    """Street scene along the path; returns the ego camera's lateral offset (its lane)."""
    rng = sc.rng
    lanes = int(rng.integers(1, 3))
    road = _Road(lanes, rng.uniform(3.0, 3.6), 0.0)
    road.walk_w = rng.uniform(1.5, 4.0)
    info.update(lanes_per_direction=lanes, road_half_width_m=round(road.half, 2))
    _road_surface(sc, path, road)
    n_build = _buildings(sc, path, road)
    n_poles, n_trees = _poles_and_trees(sc, path, road)
    n_moving = _cars(sc, path, road, ego_s, ego_v) + _pedestrians(sc, road, ego_s)
    info.update(buildings=n_build, poles=n_poles, trees=n_trees, moving_objects=n_moving)
    return -(int(rng.integers(lanes)) + 0.5) * road.lane_w
