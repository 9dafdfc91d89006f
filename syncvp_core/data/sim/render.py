"""Headless MuJoCo rendering: OpenGL backend choice, one-pass colour + metric z-depth from a camera."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from .config import SimError

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


def mujoco_module():
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
        mujoco = mujoco_module()
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

