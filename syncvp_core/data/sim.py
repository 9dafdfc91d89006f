"""RGB-D video simulator: a camera moving like a vehicle or a mobile robot through procedural scenes.

Rendering is MuJoCo's OpenGL renderer, headless: ``MUJOCO_GL=egl`` (default) or ``osmesa``; see
:func:`select_gl_backend`. Every sequence is reproducible from its seed (same machine and GL driver: same
bytes; other GL drivers may differ in the last bit of a few pixels).

Each sequence holds, per frame:

* ``rgb`` uint8 (N, H, W, 3);
* ``depth`` float32 (N, H, W): **z-depth in metres** (distance along the optical axis, REP 118), from the
  depth buffer with MuJoCo's reversed-Z near/far mapping undone exactly (:func:`depth_from_buffer`); the
  sky (no surface before the far plane) and anything beyond ``max_depth_m`` is NaN (no return);
* ``K`` (3, 3): pinhole intrinsics, square pixels, principal point at the image centre
  (``cx = W/2 - 0.5`` with pixel centres at integer coordinates);
* ``poses`` (N, 4, 4): camera-to-world transforms in the **optical** convention (x right, y down,
  z forward), world z up, metres;
* ``stamps_ns`` (N,) int64 at ``rate_hz`` (default 10 Hz).

Scenes (``scene``): ``street`` (vehicle: road with lane markings, kerbs, buildings, poles, trees, parked and
moving cars, pedestrians; 4-13 m/s with turns and speed changes, camera 1.2-1.7 m high), ``yard``
(mobile robot in a warehouse yard: shelves, crates, pillars, walls, people and carts moving; 0.4-2 m/s,
camera 0.3-0.9 m high) or ``mixed`` (one of the two per sequence). Textures, colours, sun direction and
intensity, haze and sky vary per sequence.

Output of :func:`generate` (``syncvp sim``): ``OUT/seq_NNNNN.npz`` (the arrays above) and
``OUT/seq_NNNNN.json`` (seed, config, scene statistics) per sequence, plus ``OUT/sim_meta.json``.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .frames import RGBDFrame, intrinsics_matrix

SCENES = ("street", "yard", "mixed")
T0_NS = 1_700_000_000_000_000_000  # a fixed start stamp: output does not depend on the clock


class SimError(RuntimeError):
    """The simulator cannot run (no headless OpenGL, bad configuration)."""


@dataclass
class SimConfig:
    height: int = 128
    width: int = 128
    frames: int = 30
    rate_hz: float = 10.0
    scene: str = "mixed"
    fovy_deg: float = 60.0  # vertical field of view
    near_m: float = 0.05
    far_m: float = 400.0
    max_depth_m: float | None = None  # sensor range: farther depth becomes NaN (None = up to far_m)
    antialias: bool = True  # 4x multisampling (colour edges); depth is unaffected
    shadows: bool = True

    def __post_init__(self) -> None:
        if self.scene not in SCENES:
            raise SimError(f"scene must be one of {SCENES}, got {self.scene!r}")
        if self.height < 8 or self.width < 8 or self.frames < 1 or self.rate_hz <= 0:
            raise SimError(f"bad simulator size/frames/rate: {self.height}x{self.width}, {self.frames} "
                           f"frames at {self.rate_hz} Hz")
        if not 0 < self.near_m < self.far_m:
            raise SimError(f"need 0 < near_m < far_m, got {self.near_m}, {self.far_m}")

    @property
    def K(self) -> np.ndarray:
        fy = (self.height / 2.0) / math.tan(math.radians(self.fovy_deg) / 2.0)
        return intrinsics_matrix(fy, fy, self.width / 2.0 - 0.5, self.height / 2.0 - 0.5)


@dataclass
class SimSequence:
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    poses: np.ndarray
    stamps_ns: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    def frames(self) -> list[RGBDFrame]:
        return [RGBDFrame(int(self.stamps_ns[i]), self.rgb[i], self.depth[i], self.K.copy(),
                          extra={"pose": self.poses[i]}) for i in range(len(self))]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        np.savez_compressed(path.with_suffix(".npz"), rgb=self.rgb, depth=self.depth, K=self.K,
                            poses=self.poses, stamps_ns=self.stamps_ns)
        path.with_suffix(".json").write_text(json.dumps(self.meta, indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> SimSequence:
        path = Path(path)
        with np.load(path.with_suffix(".npz")) as z:
            arrays = {k: z[k] for k in ("rgb", "depth", "K", "poses", "stamps_ns")}
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(**arrays, meta=meta)


# ----------------------------------------------------------------------------------------------------
# Headless OpenGL


_PROBE = """
import mujoco, numpy as np
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="box" size="1 1 1"/></worldbody></mujoco>')
ctx = mujoco.GLContext(8, 8); ctx.make_current()
con = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_150)
print("ok")
"""

_GL_HELP = ("Headless rendering needs EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1 "
            "libgles2; with an NVIDIA GPU its driver provides EGL) or OSMesa (apt-get install libosmesa6). "
            "Set MUJOCO_GL=egl or MUJOCO_GL=osmesa to choose.")


def select_gl_backend(candidates: tuple[str, ...] = ("egl", "osmesa")) -> str:
    """Pick the headless OpenGL backend and put it in ``MUJOCO_GL`` (before mujoco is imported).

    A backend the user set in ``MUJOCO_GL`` is used as is. Otherwise each candidate is tried in a
    subprocess (the GL platform cannot change once loaded); the first that renders wins.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    errors = []
    for backend in candidates:
        env = {**os.environ, "MUJOCO_GL": backend}
        env.pop("PYOPENGL_PLATFORM", None)
        try:
            r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                               timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            errors.append(f"{backend}: {e}")
            continue
        if r.returncode == 0 and "ok" in r.stdout:
            os.environ["MUJOCO_GL"] = backend
            return backend
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        errors.append(f"{backend}: {last}")
    raise SimError("no headless OpenGL backend works for MuJoCo (" + "; ".join(errors) + "). " + _GL_HELP)


def _mujoco():
    if "mujoco" not in sys.modules:
        select_gl_backend()
    elif not os.environ.get("MUJOCO_GL"):
        raise SimError("mujoco was imported before MUJOCO_GL was set, so it picked a windowed OpenGL backend; "
                       "set MUJOCO_GL=egl (or osmesa) in the environment, or import syncvp_core.data.sim "
                       "and call select_gl_backend() before importing mujoco")
    try:
        import mujoco
    except ImportError as e:
        raise SimError("the simulator needs MuJoCo: pip install 'mujoco>=3.1' (extra: syncvp_ros[sim])") from e
    return mujoco


def depth_from_buffer(buf: np.ndarray, near: float, far: float) -> np.ndarray:
    """MuJoCo's reversed-Z depth buffer (1 at the near plane, 0 at the far plane) -> z-depth in metres.

    The projection maps eye depth z to ``b = n (f - z) / (z (f - n))``; inverting gives
    ``z = f n / (n + b (f - n))`` (float64: the buffer is float32 and the map is hyperbolic).
    Buffer values of 0 (nothing drawn before the far plane) become NaN.
    """
    b = buf.astype(np.float64)
    z = (far * near) / (near + b * (far - near))
    z[b <= 0.0] = np.nan
    return z.astype(np.float32)


def _gl_renderer_name() -> str:
    """The OpenGL renderer and version of the current context (pixels are bit-exact only on the same one)."""
    try:
        from OpenGL import GL

        return f"{GL.glGetString(GL.GL_RENDERER).decode()} | {GL.glGetString(GL.GL_VERSION).decode()}"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


class MujocoRGBDRenderer:
    """Offscreen colour + depth from one camera of a MuJoCo model in one render pass."""

    def __init__(self, model, height: int, width: int, camera: str = "cam", fog: bool = False,
                 max_geom: int = 4000) -> None:
        mujoco = _mujoco()
        self._mj = mujoco
        self.model, self.height, self.width = model, height, width
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise SimError(f"image {width}x{height} exceeds the model's offscreen buffer "
                           f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}")
        try:
            self._gl = mujoco.GLContext(width, height)
            self._gl.make_current()
            self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        except Exception as e:
            raise SimError(f"cannot create an OpenGL context with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: "
                           f"{e}. " + _GL_HELP) from e
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._con.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=max_geom)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_FOG] = bool(fog)
        self._opt = mujoco.MjvOption()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self._cam.fixedcamid < 0:
            raise SimError(f"model has no camera named {camera!r}")
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._zbuf = np.empty((height, width), np.float32)
        self.gl_renderer = _gl_renderer_name()
        ext = float(model.stat.extent)
        self.near = float(model.vis.map.znear) * ext
        self.far = float(model.vis.map.zfar) * ext

    def render(self, data) -> tuple[np.ndarray, np.ndarray]:
        """-> (rgb uint8 (H, W, 3), z-depth float32 (H, W) metres, NaN where nothing was hit)."""
        mj = self._mj
        self._gl.make_current()
        mj.mjv_updateScene(self.model, data, self._opt, None, self._cam, mj.mjtCatBit.mjCAT_ALL, self._scene)
        mj.mjr_render(self._rect, self._scene, self._con)
        mj.mjr_readPixels(self._rgb, None, self._rect, self._con)
        # Depth pass: MuJoCo draws the skybox at a finite distance, so the colour pass's depth would give the
        # sky a depth; without it the sky stays at the far plane (-> NaN). Flat colours, no shadows: cheap.
        flags = self._scene.flags
        saved = flags.copy()
        flags[mj.mjtRndFlag.mjRND_SKYBOX] = False
        flags[mj.mjtRndFlag.mjRND_SHADOW] = False
        flags[mj.mjtRndFlag.mjRND_SEGMENT] = True
        mj.mjr_render(self._rect, self._scene, self._con)
        mj.mjr_readPixels(None, self._zbuf, self._rect, self._con)
        flags[:] = saved
        # OpenGL's first row is the bottom of the image.
        rgb = np.ascontiguousarray(self._rgb[::-1])
        depth = depth_from_buffer(self._zbuf[::-1], self.near, self.far)
        return rgb, depth

    def close(self) -> None:
        if getattr(self, "_con", None) is not None:
            self._con.free()
            self._con = None
        if getattr(self, "_gl", None) is not None:
            self._gl.free()
            self._gl = None


# ----------------------------------------------------------------------------------------------------
# Motion


def _rot_to_quat(R: np.ndarray) -> np.ndarray:
    mujoco = _mujoco()
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


@dataclass
class _Path:
    """A dense planar polyline with arc length, used for the ego motion, the road and the traffic."""

    xy: np.ndarray  # (M, 2)
    yaw: np.ndarray  # (M,)
    s: np.ndarray  # (M,) arc length

    def at(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        s = np.clip(np.asarray(s, dtype=np.float64), self.s[0], self.s[-1])
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        yaw = np.interp(s, self.s, np.unwrap(self.yaw))
        return np.stack([x, y], -1), yaw

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """Distance of each point (K, 2) to the polyline's vertices (dense, so close to the true one)."""
        d = np.linalg.norm(pts[:, None, :] - self.xy[None, ::2, :], axis=-1)
        return d.min(axis=1)


def _drive(rng: np.random.Generator, style: dict, duration_s: float, dt: float) -> tuple[np.ndarray, ...]:
    """Integrate a vehicle-like motion: speed changes with bounded acceleration, straight stretches and
    turns. Returns per-step (x, y, yaw, speed, yaw_rate, accel)."""
    n = int(math.ceil(duration_s / dt)) + 1
    v = rng.uniform(*style["speed"])
    target_v, target_w = v, 0.0
    x = y = 0.0
    yaw = 0.0
    w = 0.0
    t_next_v = rng.uniform(1.0, 4.0)
    t_next_w = rng.uniform(*style["straight_s"])
    turning = False
    out = np.zeros((n, 6))
    for i in range(n):
        t = i * dt
        if t >= t_next_v:
            target_v = rng.uniform(*style["speed"])
            t_next_v = t + rng.uniform(1.5, 5.0)
        if t >= t_next_w:
            turning = not turning
            if turning:
                target_w = rng.choice([-1, 1]) * rng.uniform(*style["yaw_rate"])
                t_next_w = t + rng.uniform(*style["turn_s"])
            else:
                target_w = rng.normal(0, style["yaw_rate"][0] * 0.15)
                t_next_w = t + rng.uniform(*style["straight_s"])
        a = np.clip(target_v - v, -style["accel"] * dt, style["accel"] * dt)
        v = max(0.0, v + a)
        w += np.clip(target_w - w, -style["yaw_acc"] * dt, style["yaw_acc"] * dt)
        out[i] = (x, y, yaw, v, w, a / dt)
        x += v * math.cos(yaw) * dt
        y += v * math.sin(yaw) * dt
        yaw += w * dt
    return tuple(out.T)


STYLES = {
    "street": dict(speed=(4.0, 13.0), accel=2.0, yaw_rate=(0.12, 0.35), yaw_acc=0.25, straight_s=(2.5, 7.0),
                   turn_s=(1.5, 4.0), cam_height=(1.2, 1.7)),
    "yard": dict(speed=(0.4, 2.0), accel=0.6, yaw_rate=(0.2, 0.6), yaw_acc=0.6, straight_s=(2.0, 6.0),
                 turn_s=(1.0, 3.0), cam_height=(0.3, 0.9)),
}


def _camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-MuJoCo-camera rotation (camera looks along its -z, y up)."""
    f = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    r = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    u = np.cross(r, f)
    r, u = math.cos(roll) * r + math.sin(roll) * u, -math.sin(roll) * r + math.cos(roll) * u
    return np.stack([r, u, -f], axis=1)


# ----------------------------------------------------------------------------------------------------
# Scene generation (MJCF text)


def _c(rgb) -> str:
    return " ".join(f"{v:.3f}" for v in rgb)


def _rand_color(rng, lo=0.1, hi=0.9, sat=0.6) -> np.ndarray:
    base = rng.uniform(lo, hi)
    return np.clip(base + rng.uniform(-sat, sat, 3) * base, 0, 1)


class _Scene:
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
            self.assets.append(f'<material name="{name}" rgba="{_c(rgb)} 1" specular="{specular}"/>')
            return name
        rgb2 = rgb if rgb2 is None else rgb2
        self.assets.append(
            f'<texture name="t{name}" type="2d" builtin="{builtin}" rgb1="{_c(rgb)}" rgb2="{_c(rgb2)}" '
            f'width="{width}" height="{width}" mark="{mark}" random="{random}" markrgb="{_c(markrgb)}"/>')
        self.assets.append(f'<material name="{name}" texture="t{name}" texrepeat="{repeat[0]} {repeat[1]}" '
                           f'specular="{specular}" texuniform="{str(texuniform).lower()}"/>')
        return name

    def box(self, pos, size, yaw, mat) -> None:
        q = _yaw_quat(yaw)
        self.geoms.append(f'<geom type="box" pos="{_c(pos)}" size="{_c(size)}" quat="{_c(q)}" '
                          f'material="{mat}"/>')

    def cyl(self, pos, radius, half_h, mat) -> None:
        self.geoms.append(f'<geom type="cylinder" pos="{_c(pos)}" size="{radius:.3f} {half_h:.3f}" '
                          f'material="{mat}"/>')

    def sphere(self, pos, radius, mat, stretch=(1, 1, 1)) -> None:
        size = np.asarray(stretch) * radius
        self.geoms.append(f'<geom type="ellipsoid" pos="{_c(pos)}" size="{_c(size)}" material="{mat}"/>')

    def mover(self, geoms: list[str], track: dict) -> None:
        i = len(self.movers)
        self.bodies.append(f'<body name="mv{i}" mocap="true" pos="0 0 -50">' + "".join(geoms) + "</body>")
        self.movers.append(track)


def _car_geoms(rng, mat_body: str, mat_glass: str, mat_tyre: str) -> list[str]:
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


def _person_geoms(mat_body: str, mat_head: str, rng) -> list[str]:
    h = rng.uniform(1.5, 1.9)
    return [f'<geom type="capsule" fromto="0 0 0.25 0 0 {h - 0.45:.3f}" size="0.2" material="{mat_body}"/>',
            f'<geom type="sphere" pos="0 0 {h - 0.15:.3f}" size="0.13" material="{mat_head}"/>']


def _street(sc: _Scene, path: _Path, ego_s: np.ndarray, ego_v: np.ndarray, info: dict) -> float:
    """Street scene along the path; returns the ego camera's lateral offset (its lane, right-hand traffic)."""
    rng = sc.rng
    lanes = int(rng.integers(1, 3))  # per direction
    lane_w = rng.uniform(3.0, 3.6)
    park_w = 2.3  # a parking strip on both sides, outside the driving lanes
    road_half = lanes * lane_w + park_w
    walk_w = rng.uniform(1.5, 4.0)
    info.update(lanes_per_direction=lanes, road_half_width_m=round(road_half, 2))
    grey = rng.uniform(0.18, 0.32)
    road = sc.material((grey, grey, grey * 1.02), "flat", mark="random", random=0.08,
                       markrgb=(grey * 1.5,) * 3, repeat=(0.5, 0.5), width=128, texuniform=True)
    stripe = sc.material((0.85, 0.85, 0.8) if rng.random() < 0.7 else (0.9, 0.75, 0.2))
    w = rng.uniform(0.45, 0.75)
    walk = sc.material((w, w, w * 0.97), "checker", rgb2=(w * 0.85,) * 3, repeat=(3, 3))
    # Road, kerbs/sidewalks and dashed centre line as short boxes that follow the path.
    seg = 3.0
    s_vals = np.arange(path.s[0], path.s[-1], seg)
    pts, yaws = path.at(s_vals + seg / 2)
    for k, ((x, y), yaw) in enumerate(zip(pts, yaws)):
        n = np.array([-math.sin(yaw), math.cos(yaw)])
        sc.box((x, y, 0.01), (seg / 2 + 0.15, road_half, 0.01), yaw, road)
        for side in (-1, 1):
            c = np.array([x, y]) + side * n * (road_half + walk_w / 2)
            sc.box((c[0], c[1], 0.08), (seg / 2 + 0.15, walk_w / 2, 0.08), yaw, walk)
        if k % 2 == 0:
            sc.box((x, y, 0.021), (1.2, 0.08, 0.002), yaw, stripe)
    # Buildings along both sides, clear of the road everywhere along the path.
    n_build = 0
    facade_mats = []
    for _ in range(int(rng.integers(3, 7))):
        wall = _rand_color(rng, 0.25, 0.8, 0.35)
        win = np.clip(wall * rng.uniform(0.2, 0.5) + rng.uniform(0, 0.15, 3), 0, 1)
        facade_mats.append(sc.material(wall, "checker", rgb2=win, repeat=(1, 1), texuniform=True,
                                       mark="edge" if rng.random() < 0.5 else "none", markrgb=wall * 0.8))
    clearance = road_half + walk_w + 0.3
    for side in (-1, 1):
        s = path.s[0] + rng.uniform(0, 10)
        while s < path.s[-1]:
            front = rng.uniform(6, 22)
            depth = rng.uniform(6, 16)
            height = rng.uniform(4, 30) if rng.random() < 0.85 else rng.uniform(30, 60)
            setback = rng.uniform(0.5, 8)
            (p,), (yaw,) = path.at([s + front / 2])
            n = np.array([-math.sin(yaw), math.cos(yaw)])
            c = p + side * n * (clearance + setback + depth / 2)
            t = np.array([math.cos(yaw), math.sin(yaw)])
            corners = np.array([c + a * t * front / 2 + b * n * depth / 2 for a in (-1, 1) for b in (-1, 1)])
            if path.distance(np.vstack([corners, c[None]])).min() > clearance and rng.random() < 0.9:
                sc.box((c[0], c[1], height / 2), (front / 2, depth / 2, height / 2), yaw,
                       facade_mats[int(rng.integers(len(facade_mats)))])
                n_build += 1
            s += front + rng.uniform(0, 8)
    # Poles (street lights, signs) and trees on the sidewalks.
    pole = sc.material(_rand_color(rng, 0.2, 0.6, 0.1), specular=0.4)
    trunk = sc.material((0.35, 0.25, 0.15))
    leaf = sc.material(np.clip([0.15, 0.45, 0.12] + rng.uniform(-0.08, 0.08, 3), 0, 1), "flat", mark="random",
                       random=0.3, markrgb=(0.1, 0.3, 0.08))
    n_poles = n_trees = 0
    for side in (-1, 1):
        s = path.s[0] + rng.uniform(0, 15)
        while s < path.s[-1]:
            (p,), (yaw,) = path.at([s])
            n = np.array([-math.sin(yaw), math.cos(yaw)])
            if rng.random() < 0.55:
                c = p + side * n * (road_half + 0.6)
                if path.distance(c[None])[0] > road_half + 0.3:
                    h = rng.uniform(3.5, 8.0)
                    sc.cyl((c[0], c[1], h / 2), rng.uniform(0.06, 0.15), h / 2, pole)
                    n_poles += 1
            else:
                c = p + side * n * (road_half + walk_w * 0.85)
                if path.distance(c[None])[0] > road_half + 0.8:
                    h = rng.uniform(2.0, 4.0)
                    sc.cyl((c[0], c[1], h / 2), 0.15, h / 2, trunk)
                    sc.sphere((c[0], c[1], h + 1.0), rng.uniform(1.0, 2.2), leaf, (1, 1, rng.uniform(0.8, 1.4)))
                    n_trees += 1
            s += rng.uniform(8, 30)
    # Traffic: parked cars, cars ahead, oncoming cars, pedestrians on the sidewalks.
    glass = sc.material((0.1, 0.12, 0.15), specular=0.8)
    tyre = sc.material((0.05, 0.05, 0.05))
    car_mats = [sc.material(_rand_color(rng, 0.1, 0.9, 0.8), specular=0.6) for _ in range(4)]
    n_moving = 0
    for _ in range(int(rng.integers(2, 8))):  # parked
        s = rng.uniform(path.s[0], path.s[-1])
        side = rng.choice([-1, 1])
        (p,), (yaw,) = path.at([s])
        n = np.array([-math.sin(yaw), math.cos(yaw)])
        c = p + side * n * (road_half - park_w / 2)
        if path.distance(c[None])[0] > road_half - park_w + 0.3:  # still in its strip on a bend
            geoms = _car_geoms(rng, car_mats[int(rng.integers(4))], glass, tyre)
            sc.mover(geoms, dict(kind="static", xy=c.tolist(), yaw=float(yaw)))
    for _ in range(int(rng.integers(1, 5))):  # same direction, pulling away from the ego camera
        s0 = ego_s[0] + rng.uniform(12, 60)
        v = float(np.max(ego_v)) + rng.uniform(1.0, 3.0)  # m/s
        lane = int(rng.integers(lanes))
        geoms = _car_geoms(rng, car_mats[int(rng.integers(4))], glass, tyre)
        sc.mover(geoms, dict(kind="path", s0=s0, ds=v, offset=-(lane + 0.5) * lane_w, reverse=False))
        n_moving += 1
    for _ in range(int(rng.integers(1, 6))):  # oncoming
        s0 = ego_s[0] + rng.uniform(20, 150)
        v = rng.uniform(0.4, 1.4) * float(np.mean(ego_v) + 0.3)  # m/s
        lane = int(rng.integers(lanes))
        geoms = _car_geoms(rng, car_mats[int(rng.integers(4))], glass, tyre)
        sc.mover(geoms, dict(kind="path", s0=s0, ds=-v, offset=(lane + 0.5) * lane_w, reverse=True))
        n_moving += 1
    skin = sc.material(np.clip(np.array([0.8, 0.6, 0.45]) * rng.uniform(0.4, 1.1), 0, 1))
    for _ in range(int(rng.integers(2, 10))):  # pedestrians
        side = rng.choice([-1, 1])
        off = side * (road_half + walk_w * rng.uniform(0.2, 0.5))
        v = rng.uniform(0.8, 1.6) * rng.choice([-1, 1])  # m/s
        geoms = _person_geoms(sc.material(_rand_color(rng, 0.1, 0.8, 0.7)), skin, rng)
        sc.mover(geoms, dict(kind="path", s0=ego_s[0] + rng.uniform(0, 80), ds=v, offset=off, reverse=v < 0))
        n_moving += 1
    info.update(buildings=n_build, poles=n_poles, trees=n_trees, moving_objects=n_moving)
    return -(int(rng.integers(lanes)) + 0.5) * lane_w


def _yard(sc: _Scene, path: _Path, ego_s: np.ndarray, info: dict) -> None:
    rng = sc.rng
    clear = rng.uniform(1.0, 1.6)
    crate_mats = [sc.material(_rand_color(rng, 0.3, 0.8, 0.5), "checker",
                              rgb2=_rand_color(rng, 0.2, 0.7, 0.5), repeat=(2, 2), mark="edge",
                              markrgb=(0.1, 0.1, 0.1)) for _ in range(4)]
    shelf = sc.material(_rand_color(rng, 0.2, 0.6, 0.6), specular=0.3)
    pillar = sc.material((0.7, 0.7, 0.68), "flat", mark="random", random=0.05, markrgb=(0.5, 0.5, 0.5))
    lo, hi = path.xy.min(0) - 25, path.xy.max(0) + 25
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
    wall = sc.material(_rand_color(rng, 0.4, 0.85, 0.2), "checker", rgb2=_rand_color(rng, 0.3, 0.7, 0.2),
                       repeat=(10, 2))
    cx, cy = (lo + hi) / 2
    hx, hy = (hi - lo) / 2 + 5
    wh = rng.uniform(4, 10)
    for (px, py, sx, sy) in ((cx, cy + hy, hx, 0.3), (cx, cy - hy, hx, 0.3), (cx + hx, cy, 0.3, hy),
                             (cx - hx, cy, 0.3, hy)):
        sc.box((px, py, wh / 2), (sx, sy, wh / 2), 0.0, wall)
    body_mats = [sc.material(_rand_color(rng, 0.1, 0.8, 0.7)) for _ in range(3)]
    skin = sc.material(np.clip(np.array([0.8, 0.6, 0.45]) * rng.uniform(0.4, 1.1), 0, 1))
    n_moving = 0
    for _ in range(int(rng.integers(2, 8))):  # people and carts moving beside the robot's path
        side = rng.choice([-1, 1])
        off = side * rng.uniform(clear + 0.6, clear + 4.0)
        v = rng.uniform(0.4, 1.5) * rng.choice([-1, 1])
        if rng.random() < 0.6:
            geoms = _person_geoms(body_mats[int(rng.integers(3))], skin, rng)
        else:
            sz = rng.uniform([0.4, 0.3, 0.4], [1.0, 0.6, 0.9])
            geoms = [f'<geom type="box" pos="0 0 {sz[2]:.3f}" size="{_c(sz)}" '
                     f'material="{crate_mats[int(rng.integers(4))]}"/>']
        sc.mover(geoms, dict(kind="path", s0=ego_s[0] + rng.uniform(-5, 25), ds=v, offset=off, reverse=v < 0))
        n_moving += 1
    info.update(obstacles=n_obst, moving_objects=n_moving)


def _scene_xml(sc: _Scene, cfg: SimConfig, style_name: str, info: dict) -> tuple[str, bool]:
    rng = sc.rng
    top = _rand_color(rng, 0.35, 0.75, 0.3) * np.array([0.8, 0.9, 1.15])
    horizon = np.clip(top + rng.uniform(0.1, 0.35), 0, 1)
    sc.assets.append(f'<texture name="sky" type="skybox" builtin="gradient" rgb1="{_c(np.clip(top, 0, 1))}" '
                     f'rgb2="{_c(horizon)}" width="64" height="64"/>')
    if style_name == "street":
        g = _rand_color(rng, 0.2, 0.5, 0.4) * np.array([0.8, 1.1, 0.7])
        ground = sc.material(np.clip(g, 0, 1), "checker", rgb2=np.clip(g * 0.85, 0, 1), repeat=(0.25, 0.25),
                             mark="random", random=0.1, markrgb=np.clip(g * 1.3, 0, 1), texuniform=True,
                             width=128)
    else:
        g = rng.uniform(0.35, 0.7)
        tile = rng.choice([0.5, 1.0, 2.0])  # floor tiles of 1-4 m with grime
        ground = sc.material((g, g, g * 0.98), "checker", rgb2=(g * rng.uniform(0.75, 0.95),) * 3,
                             repeat=(1 / tile, 1 / tile), mark="random", random=0.04, markrgb=(g * 0.6,) * 3,
                             texuniform=True, width=128)
    elev = math.radians(rng.uniform(20, 75))
    az = rng.uniform(0, 2 * math.pi)
    sun_dir = -np.array([math.cos(elev) * math.cos(az), math.cos(elev) * math.sin(az), math.sin(elev)])
    sun = rng.uniform(0.45, 0.95)
    sun_rgb = np.clip(sun * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.8, 1.0)]), 0, 1)
    amb = rng.uniform(0.2, 0.45)
    fog = bool(rng.random() < 0.3)
    fog_end = rng.uniform(80, 250)
    info.update(sun_elevation_deg=round(math.degrees(elev), 1), sun_intensity=round(sun, 2),
                ambient=round(amb, 2), haze=fog)
    # extent=1 makes znear/zfar/fog/shadowclip absolute metres.
    xml = f"""<mujoco model="syncvp_{style_name}">
 <statistic extent="1" center="0 0 0"/>
 <visual>
  <global offwidth="{max(cfg.width, 64)}" offheight="{max(cfg.height, 64)}"/>
  <quality shadowsize="{1024 if cfg.shadows else 0}" offsamples="{4 if cfg.antialias else 0}"/>
  <map znear="{cfg.near_m}" zfar="{cfg.far_m}" shadowclip="60" fogstart="{fog_end * 0.2:.1f}"
   fogend="{fog_end:.1f}"/>
  <headlight ambient="{amb:.3f} {amb:.3f} {amb:.3f}" diffuse="0.15 0.15 0.15" specular="0 0 0"/>
  <rgba fog="{_c(horizon)} 1"/>
 </visual>
 <asset>
  {"".join(sc.assets)}
 </asset>
 <worldbody>
  <light directional="true" dir="{_c(sun_dir)}" diffuse="{_c(sun_rgb)}" specular="0.2 0.2 0.2"
   castshadow="{str(cfg.shadows).lower()}"/>
  <geom type="plane" size="2000 2000 0.1" material="{ground}"/>
  {"".join(sc.geoms)}
  {"".join(sc.bodies)}
  <body name="ego" mocap="true"><camera name="cam" fovy="{cfg.fovy_deg}"/></body>
 </worldbody>
</mujoco>"""
    return xml, fog


# ----------------------------------------------------------------------------------------------------
# Sequences


def simulate_sequence(cfg: SimConfig, seed: int, only_frames: list[int] | None = None) -> SimSequence:
    """Render one sequence. Deterministic in (cfg, seed). ``only_frames``: render just these frame indices
    of the sequence (same scene and motion; e.g. to check a committed recording quickly)."""
    mujoco = _mujoco()
    rng = np.random.default_rng(seed)
    style_name = cfg.scene if cfg.scene != "mixed" else ("street" if rng.random() < 0.6 else "yard")
    style = STYLES[style_name]
    dt_frame = 1.0 / cfg.rate_hz
    sub = 10
    duration = (cfg.frames - 1) * dt_frame
    # Plan the motion with look-ahead so the road/scene exists beyond the last frame.
    ahead_s = 12.0 if style_name == "street" else 15.0
    x, y, yaw, v, w, acc = _drive(rng, style, duration + ahead_s, dt_frame / sub)
    # Prepend 30 m (street) / 6 m (yard) of straight road behind the start.
    back = 30.0 if style_name == "street" else 6.0
    pre = np.linspace(-back, 0, 31)[:-1]
    px = np.concatenate([pre, x])
    py = np.concatenate([np.zeros_like(pre), y])
    pyaw = np.concatenate([np.zeros_like(pre), yaw])
    seg = np.hypot(np.diff(px), np.diff(py))
    keep = np.concatenate([[True], seg > 1e-6])
    px, py, pyaw = px[keep], py[keep], pyaw[keep]
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(px), np.diff(py)))]) - back
    path = _Path(np.stack([px, py], -1), pyaw, s)
    idx = np.arange(cfg.frames) * sub
    ego_s = np.concatenate([[0.0], np.cumsum(v[:-1] * dt_frame / sub)])[idx]
    sc = _Scene(rng)
    info: dict[str, Any] = {"scene": style_name}
    lane_offset = 0.0
    if style_name == "street":
        lane_offset = _street(sc, path, ego_s, v[idx], info)
    else:
        _yard(sc, path, ego_s, info)
    xml, fog = _scene_xml(sc, cfg, style_name, info)
    try:
        model = mujoco.MjModel.from_xml_string(xml)
    except Exception as e:  # a bug in the generator, not the user's input
        raise SimError(f"scene generation produced an invalid model (seed {seed}): {e}") from e
    data = mujoco.MjData(model)
    ego_id = model.body("ego").mocapid[0]
    mover_ids = [model.body(f"mv{i}").mocapid[0] for i in range(len(sc.movers))]
    cam_h = rng.uniform(*style["cam_height"])
    pitch0 = math.radians(rng.uniform(-4, 2))
    bob_phase, bob_freq = rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 2.5)

    renderer = MujocoRGBDRenderer(model, cfg.height, cfg.width, fog=fog)
    gl_name = renderer.gl_renderer
    which = list(range(cfg.frames)) if only_frames is None else [int(k) for k in only_frames]
    if any(not 0 <= k < cfg.frames for k in which):
        raise SimError(f"only_frames {which} outside 0..{cfg.frames - 1}")
    rgbs = np.empty((len(which), cfg.height, cfg.width, 3), np.uint8)
    depths = np.empty((len(which), cfg.height, cfg.width), np.float32)
    poses = np.empty((len(which), 4, 4), np.float64)
    flip = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes (x right, y up, z back) -> optical
    try:
        for out_i, k in enumerate(which):
            i = idx[k]
            t = k * dt_frame
            (p,), (hd,) = path.at([ego_s[k]])
            n = np.array([-math.sin(hd), math.cos(hd)])
            xy = p + n * lane_offset
            bob = 0.01 * v[i] ** 0.5 * math.sin(2 * math.pi * bob_freq * t + bob_phase)
            pitch = pitch0 - 0.006 * acc[i] + bob * 0.5
            roll = float(np.clip(0.004 * v[i] * w[i], -0.05, 0.05))
            R = _camera_rotation(hd, pitch, roll)
            pos = np.array([xy[0], xy[1], cam_h + bob])
            data.mocap_pos[ego_id] = pos
            data.mocap_quat[ego_id] = _rot_to_quat(R)
            for mid, tr in zip(mover_ids, sc.movers):
                if tr["kind"] == "static":
                    data.mocap_pos[mid] = (*tr["xy"], 0.0)
                    data.mocap_quat[mid] = _yaw_quat(tr["yaw"])
                    continue
                (q,), (qyaw,) = path.at([tr["s0"] + tr["ds"] * t])
                nn = np.array([-math.sin(qyaw), math.cos(qyaw)])
                c = q + nn * tr["offset"]
                data.mocap_pos[mid] = (c[0], c[1], 0.0)
                data.mocap_quat[mid] = _yaw_quat(qyaw + (math.pi if tr["reverse"] else 0.0))
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            rgb, depth = renderer.render(data)
            if cfg.max_depth_m is not None:
                depth[depth > cfg.max_depth_m] = np.nan
            rgbs[out_i], depths[out_i] = rgb, depth
            T = np.eye(4)
            T[:3, :3] = R @ flip
            T[:3, 3] = pos
            poses[out_i] = T
    finally:
        renderer.close()
    stamps = T0_NS + np.round(np.asarray(which) * 1e9 / cfg.rate_hz).astype(np.int64)
    valid = np.isfinite(depths)
    dv = depths[valid]
    info.update(
        seed=int(seed), config=asdict(cfg), frames=cfg.frames, rate_hz=cfg.rate_hz,
        mean_speed_mps=round(float(np.mean(v[idx])), 3), distance_m=round(float(ego_s[-1] - ego_s[0]), 3),
        camera_height_m=round(float(cam_h), 3),
        depth_valid_fraction=round(float(valid.mean()), 4),
        depth_percentiles_m={str(q): round(float(np.percentile(dv, q)), 3) for q in (1, 50, 99)} if dv.size else {},
        gl_backend=os.environ.get("MUJOCO_GL", ""), gl_renderer=gl_name, mujoco_version=mujoco.__version__,
    )
    return SimSequence(rgbs, depths, cfg.K, poses, stamps, info)


def sequence_seeds(seed: int, n: int) -> list[int]:
    """Independent per-sequence seeds derived from one master seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def _worker(args: tuple[dict, int, int, str]) -> dict:
    cfg_d, index, seed, out_dir = args
    cfg = SimConfig(**cfg_d)
    t = time.perf_counter()
    seq = simulate_sequence(cfg, seed)
    seq.meta["index"] = index
    seq.meta["render_s"] = round(time.perf_counter() - t, 3)
    seq.save(Path(out_dir) / f"seq_{index:05d}")
    return {"index": index, "seed": seed, "scene": seq.meta["scene"], "render_s": seq.meta["render_s"]}


def generate(out_dir: str | Path, n_sequences: int, cfg: SimConfig, seed: int = 0, workers: int | None = None,
             progress: bool = True) -> list[dict]:
    """Render ``n_sequences`` sequences into ``out_dir`` in parallel processes (one GL context each)."""
    import multiprocessing as mp

    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend = select_gl_backend()
    seeds = sequence_seeds(seed, n_sequences)
    jobs = [(asdict(cfg), i, s, str(out)) for i, s in enumerate(seeds)]
    workers = max(1, min(workers or os.cpu_count() or 1, n_sequences))
    results: list[dict] = []
    bar = tqdm(total=n_sequences, desc="simulating", unit="seq", disable=not progress)
    if workers == 1:
        for j in jobs:
            results.append(_worker(j))
            bar.update()
    else:
        # spawn: a fresh interpreter per worker, so each creates its own GL context safely.
        with mp.get_context("spawn").Pool(workers) as pool:
            for r in pool.imap_unordered(_worker, jobs):
                results.append(r)
                bar.update()
    bar.close()
    results.sort(key=lambda r: r["index"])
    meta = {"config": asdict(cfg), "seed": seed, "sequences": results, "gl_backend": backend,
            "format": "syncvp-sim-npz-1",
            "arrays": {"rgb": "uint8 (N,H,W,3)", "depth": "float32 (N,H,W) z-depth metres, NaN = no return",
                       "K": "float64 (3,3)", "poses": "float64 (N,4,4) camera-to-world, optical axes",
                       "stamps_ns": "int64 (N,)"}}
    (out / "sim_meta.json").write_text(json.dumps(meta, indent=1))
    return results


def list_sequences(sim_dir: str | Path) -> list[Path]:
    """The ``seq_*.npz`` files of a simulator output folder (sorted)."""
    files = sorted(Path(sim_dir).glob("seq_*.npz"))
    if not files:
        raise SimError(f"{sim_dir}: no seq_*.npz files (not a `syncvp sim` output folder)")
    return files


def quick_frames(n: int = 4, size: tuple[int, int] = (32, 32), seed: int = 0, scene: str = "street",
                 rate_hz: float = 10.0) -> list[RGBDFrame]:
    """A few small simulated frames, fast (no shadows, no anti-aliasing): for tests and examples."""
    cfg = SimConfig(height=size[0], width=size[1], frames=n, rate_hz=rate_hz, scene=scene, antialias=False,
                    shadows=False)
    return simulate_sequence(cfg, seed).frames()


def colorize_depth(depth: np.ndarray, min_m: float = 0.5, max_m: float = 80.0) -> np.ndarray:
    """float (H, W) metres -> uint8 (H, W, 3): log depth through a colour map (near = bright), invalid = white."""
    d = np.clip(np.nan_to_num(depth, nan=max_m, posinf=max_m), min_m, max_m)
    inv = (math.log(max_m) - np.log(d)) / (math.log(max_m) - math.log(min_m))
    try:
        from matplotlib import colormaps

        rgb = (colormaps["magma"](inv)[..., :3] * 255).astype(np.uint8)
    except ImportError:  # matplotlib is optional: grey ramp
        rgb = np.repeat((inv * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[~np.isfinite(depth)] = 255
    return rgb


def preview_grid(sequences: list[SimSequence], path: str | Path, frames_per_row: int = 4, gap: int = 2) -> None:
    """Save a PNG: for each sequence a row of colour frames above a row of colourised depth."""
    from PIL import Image

    rows = []
    for seq in sequences:
        idx = np.linspace(0, len(seq) - 1, frames_per_row).round().astype(int)
        h, w = seq.rgb.shape[1:3]
        for kind in ("rgb", "depth"):
            row = np.full((h, frames_per_row * (w + gap) - gap, 3), 255, np.uint8)
            for j, k in enumerate(idx):
                img = seq.rgb[k] if kind == "rgb" else colorize_depth(seq.depth[k])
                row[:, j * (w + gap): j * (w + gap) + w] = img
            rows.append(row)
        rows.append(np.full((gap * 2, rows[-1].shape[1], 3), 255, np.uint8))
    Image.fromarray(np.concatenate(rows[:-1], axis=0)).save(path)
