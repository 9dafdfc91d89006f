"""The yard scene: a warehouse yard around the ego path with crates, shelves, pillars, walls, and people
and carts moving beside the path."""
from __future__ import annotations

import math

import numpy as np

from .mjcf import SceneBuilder, fmt, person_geoms, rand_color
from .motion import Polyline


def _obstacles(sc: SceneBuilder, path: Polyline, lo: np.ndarray, hi: np.ndarray, clear: float,
               crate_mats: list[str]) -> int:
    """Crates, shelves and pillars scattered over the yard, never on the path."""
    rng = sc.rng
    shelf = sc.material(rand_color(rng, 0.2, 0.6, 0.6), specular=0.3)
    pillar = sc.material((0.7, 0.7, 0.68), "flat", mark="random", random=0.05, markrgb=(0.5, 0.5, 0.5))
    n_obst = 0
    for _ in range(int(rng.integers(60, 140))):
        c = rng.uniform(lo, hi)
        kind = rng.random()
        if kind < 0.5:
            size = rng.uniform([0.3, 0.3, 0.2], [1.2, 1.2, 1.2])
            mat = crate_mats[int(rng.integers(4))]
        elif kind < 0.8:
            size = np.array([rng.uniform(2, 8), rng.uniform(0.4, 0.8), rng.uniform(1.0, 3.0)])
            mat = shelf
        else:
            size = np.array([0.25, 0.25, rng.uniform(3, 6)])
            mat = pillar
        yaw = rng.uniform(0, math.pi)
        r = float(np.linalg.norm(size[:2]))
        if path.distance(c[None])[0] > clear + r:
            sc.box((c[0], c[1], size[2]), size, yaw, mat)
            n_obst += 1
    return n_obst


def _walls(sc: SceneBuilder, lo: np.ndarray, hi: np.ndarray) -> None:
    rng = sc.rng
    wall = sc.material(rand_color(rng, 0.4, 0.85, 0.2), "checker", rgb2=rand_color(rng, 0.3, 0.7, 0.2),
                       repeat=(10, 2))
    cx, cy = (lo + hi) / 2
    hx, hy = (hi - lo) / 2 + 5
    wh = rng.uniform(4, 10)
    for (px, py, sx, sy) in ((cx, cy + hy, hx, 0.3), (cx, cy - hy, hx, 0.3), (cx + hx, cy, 0.3, hy),
                             (cx - hx, cy, 0.3, hy)):
        sc.box((px, py, wh / 2), (sx, sy, wh / 2), 0.0, wall)


def _people_and_carts(sc: SceneBuilder, ego_s: np.ndarray, clear: float, crate_mats: list[str]) -> int:
    """People and carts moving beside the robot's path."""
    rng = sc.rng
    body_mats = [sc.material(rand_color(rng, 0.1, 0.8, 0.7)) for _ in range(3)]
    skin = sc.material(np.clip(np.array([0.8, 0.6, 0.45]) * rng.uniform(0.4, 1.1), 0, 1))
    n = int(rng.integers(2, 8))
    for _ in range(n):
        side = rng.choice([-1, 1])
        off = side * rng.uniform(clear + 0.6, clear + 4.0)
        v = rng.uniform(0.4, 1.5) * rng.choice([-1, 1])
        if rng.random() < 0.6:
            geoms = person_geoms(body_mats[int(rng.integers(3))], skin, rng)
        else:
            sz = rng.uniform([0.4, 0.3, 0.4], [1.0, 0.6, 0.9])
            geoms = [f'<geom type="box" pos="0 0 {sz[2]:.3f}" size="{fmt(sz)}" '
                     f'material="{crate_mats[int(rng.integers(4))]}"/>']
        sc.mover(geoms, dict(kind="path", s0=ego_s[0] + rng.uniform(-5, 25), ds=v, offset=off, reverse=v < 0))
    return n


def build_yard(sc: SceneBuilder, path: Polyline, ego_s: np.ndarray, info: dict) -> None:
    rng = sc.rng
    clear = rng.uniform(1.0, 1.6)
    crate_mats = [sc.material(rand_color(rng, 0.3, 0.8, 0.5), "checker",
                              rgb2=rand_color(rng, 0.2, 0.7, 0.5), repeat=(2, 2), mark="edge",
                              markrgb=(0.1, 0.1, 0.1)) for _ in range(4)]
    lo, hi = path.xy.min(0) - 25, path.xy.max(0) + 25
    n_obst = _obstacles(sc, path, lo, hi, clear, crate_mats)
    _walls(sc, lo, hi)
    n_moving = _people_and_carts(sc, ego_s, clear, crate_mats)
    info.update(obstacles=n_obst, moving_objects=n_moving)
