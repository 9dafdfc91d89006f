"""MJCF text building blocks: materials, static geoms, mocap movers, car and person shapes."""
from __future__ import annotations

import numpy as np

from .motion import yaw_quat


def fmt(rgb) -> str:
    return " ".join(f"{v:.3f}" for v in rgb)


def rand_color(rng, lo=0.1, hi=0.9, sat=0.6) -> np.ndarray:
    base = rng.uniform(lo, hi)
    return np.clip(base + rng.uniform(-sat, sat, 3) * base, 0, 1)


class SceneBuilder:
    """Collects MJCF snippets; geoms are static, ``movers`` are mocap bodies moved per frame."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.assets: list[str] = []
        self.geoms: list[str] = []
        self.bodies: list[str] = []
        self.movers: list[dict] = []
        self.n_mat = 0

    def material(self, rgb, builtin: str | None = None, rgb2=None, repeat=(1, 1), mark: str = "none",
                 random: float = 0.0, markrgb=(1, 1, 1), specular: float = 0.1, width: int = 64,
                 texuniform: bool = False) -> str:
        self.n_mat += 1
        name = f"m{self.n_mat}"
        if builtin is None:
            self.assets.append(f'<material name="{name}" rgba="{fmt(rgb)} 1" specular="{specular}"/>')
            return name
        rgb2 = rgb if rgb2 is None else rgb2
        self.assets.append(
            f'<texture name="t{name}" type="2d" builtin="{builtin}" rgb1="{fmt(rgb)}" rgb2="{fmt(rgb2)}" '
            f'width="{width}" height="{width}" mark="{mark}" random="{random}" markrgb="{fmt(markrgb)}"/>')
        self.assets.append(f'<material name="{name}" texture="t{name}" texrepeat="{repeat[0]} {repeat[1]}" '
                           f'specular="{specular}" texuniform="{str(texuniform).lower()}"/>')
        return name

    def box(self, pos, size, yaw, mat) -> None:
        q = yaw_quat(yaw)
        self.geoms.append(f'<geom type="box" pos="{fmt(pos)}" size="{fmt(size)}" quat="{fmt(q)}" '
                          f'material="{mat}"/>')

    def cyl(self, pos, radius, half_h, mat) -> None:
        self.geoms.append(f'<geom type="cylinder" pos="{fmt(pos)}" size="{radius:.3f} {half_h:.3f}" '
                          f'material="{mat}"/>')

    def sphere(self, pos, radius, mat, stretch=(1, 1, 1)) -> None:
        size = np.asarray(stretch) * radius
        self.geoms.append(f'<geom type="ellipsoid" pos="{fmt(pos)}" size="{fmt(size)}" material="{mat}"/>')

    def mover(self, geoms: list[str], track: dict) -> None:
        i = len(self.movers)
        self.bodies.append(f'<body name="mv{i}" mocap="true" pos="0 0 -50">' + "".join(geoms) + "</body>")
        self.movers.append(track)


def car_geoms(rng, mat_body: str, mat_glass: str, mat_tyre: str) -> list[str]:
    L, W, H = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.95), rng.uniform(0.55, 0.8)
    out = [f'<geom type="box" pos="0 0 {0.3 + H / 2:.3f}" size="{L / 2:.3f} {W / 2:.3f} {H / 2:.3f}" '
           f'material="{mat_body}"/>',
           f'<geom type="box" pos="{-L * 0.08:.3f} 0 {0.3 + H + 0.25:.3f}" size="{L * 0.28:.3f} '
           f'{W / 2 - 0.08:.3f} 0.25" material="{mat_glass}"/>']
    for sx in (-1, 1):
        for sy in (-1, 1):
            out.append(f'<geom type="cylinder" pos="{sx * L * 0.32:.3f} {sy * W / 2:.3f} 0.32" size="0.32 0.1" '
                       f'quat="0.7071 0.7071 0 0" material="{mat_tyre}"/>')
    return out


def person_geoms(mat_body: str, mat_head: str, rng) -> list[str]:
    h = rng.uniform(1.5, 1.9)
    return [f'<geom type="capsule" fromto="0 0 0.25 0 0 {h - 0.45:.3f}" size="0.2" material="{mat_body}"/>',
            f'<geom type="sphere" pos="0 0 {h - 0.15:.3f}" size="0.13" material="{mat_head}"/>']

