"""Sky, ground, sun and haze of a scene, and the MJCF document that holds everything."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SimConfig
from .mjcf import SceneBuilder, fmt, rand_color


@dataclass
class _Light:
    sun_dir: np.ndarray
    sun_rgb: np.ndarray
    ambient: float
    fog: bool
    fog_end: float


def _sky(sc: SceneBuilder) -> np.ndarray:
    """Adds the gradient skybox; returns its horizon colour (also the haze colour)."""
    rng = sc.rng
    top = rand_color(rng, 0.35, 0.75, 0.3) * np.array([0.8, 0.9, 1.15])
    horizon = np.clip(top + rng.uniform(0.1, 0.35), 0, 1)
    sc.assets.append(f'<texture name="sky" type="skybox" builtin="gradient" rgb1="{fmt(np.clip(top, 0, 1))}" '
                     f'rgb2="{fmt(horizon)}" width="64" height="64"/>')
    return horizon


def _ground(sc: SceneBuilder, scene: str) -> str:
    """Grass-like ground for the street, tiled concrete with grime (tiles of 1-4 m) for the yard."""
    rng = sc.rng
    if scene == "street":
        g = rand_color(rng, 0.2, 0.5, 0.4) * np.array([0.8, 1.1, 0.7])
        return sc.material(np.clip(g, 0, 1), "checker", rgb2=np.clip(g * 0.85, 0, 1), repeat=(0.25, 0.25),
                           mark="random", random=0.1, markrgb=np.clip(g * 1.3, 0, 1), texuniform=True, width=128)
    g = rng.uniform(0.35, 0.7)
    tile = rng.choice([0.5, 1.0, 2.0])
    return sc.material((g, g, g * 0.98), "checker", rgb2=(g * rng.uniform(0.75, 0.95),) * 3,
                       repeat=(1 / tile, 1 / tile), mark="random", random=0.04, markrgb=(g * 0.6,) * 3,
                       texuniform=True, width=128)


def _light(rng: np.random.Generator, info: dict) -> _Light:
    elev = math.radians(rng.uniform(20, 75))
    az = rng.uniform(0, 2 * math.pi)
    sun_dir = -np.array([math.cos(elev) * math.cos(az), math.cos(elev) * math.sin(az), math.sin(elev)])
    sun = rng.uniform(0.45, 0.95)
    sun_rgb = np.clip(sun * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.8, 1.0)]), 0, 1)
    light = _Light(sun_dir, sun_rgb, rng.uniform(0.2, 0.45), bool(rng.random() < 0.3), rng.uniform(80, 250))
    info.update(sun_elevation_deg=round(math.degrees(elev), 1), sun_intensity=round(sun, 2),
                ambient=round(light.ambient, 2), haze=light.fog)
    return light


def world_xml(sc: SceneBuilder, cfg: SimConfig, scene: str, info: dict) -> tuple[str, bool]:
    """The whole MJCF model (sky, ground, light, the builder's assets, geoms and movers, the ego camera);
    returns it and whether haze (fog) is on."""
    horizon = _sky(sc)
    ground = _ground(sc, scene)
    lt = _light(sc.rng, info)
    amb = lt.ambient
    # extent=1 makes znear/zfar/fog/shadowclip absolute metres.
    xml = f"""<mujoco model="syncvp_{scene}">
 <statistic extent="1" center="0 0 0"/>
 <visual>
  <global offwidth="{max(cfg.width, 64)}" offheight="{max(cfg.height, 64)}"/>
  <quality shadowsize="{1024 if cfg.shadows else 0}" offsamples="{4 if cfg.antialias else 0}"/>
  <map znear="{cfg.near_m}" zfar="{cfg.far_m}" shadowclip="60" fogstart="{lt.fog_end * 0.2:.1f}"
   fogend="{lt.fog_end:.1f}"/>
  <headlight ambient="{amb:.3f} {amb:.3f} {amb:.3f}" diffuse="0.15 0.15 0.15" specular="0 0 0"/>
  <rgba fog="{fmt(horizon)} 1"/>
 </visual>
 <asset>
  {"".join(sc.assets)}
 </asset>
 <worldbody>
  <light directional="true" dir="{fmt(lt.sun_dir)}" diffuse="{fmt(lt.sun_rgb)}" specular="0.2 0.2 0.2"
   castshadow="{str(cfg.shadows).lower()}"/>
  <geom type="plane" size="2000 2000 0.1" material="{ground}"/>
  {"".join(sc.geoms)}
  {"".join(sc.bodies)}
  <body name="ego" mocap="true"><camera name="cam" fovy="{cfg.fovy_deg}"/></body>
 </worldbody>
</mujoco>"""
    return xml, lt.fog
