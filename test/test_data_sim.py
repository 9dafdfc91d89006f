"""Simulator (syncvp_core.data.sim): analytic depth, intrinsics, determinism, output format, CLI."""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from syncvp_core.data import sim

if importlib.util.find_spec("mujoco") is None:  # do not import it here: MUJOCO_GL must be set first
    pytest.skip("mujoco is not installed (pip install 'syncvp_ros[sim]')", allow_module_level=True)


@pytest.fixture(scope="module")
def gl():
    try:
        return sim.select_gl_backend()
    except sim.SimError as e:  # no EGL/OSMesa on this machine: say so instead of failing obscurely
        pytest.skip(str(e))


def _look_forward_quat():
    # MuJoCo camera looks along its -z with y up: forward = +x world, up = +z world.
    R = sim.camera_rotation(0.0, 0.0, 0.0)
    return sim.rot_to_quat(R)


def test_depth_matches_analytic_plane_and_box(gl):
    import mujoco

    H = W = 64
    h_cam, face_x, half_y, top = 1.5, 7.5, 3.0, 4.0
    q = _look_forward_quat()
    xml = f"""<mujoco><statistic extent="1" center="0 0 0"/>
      <visual><global offwidth="{W}" offheight="{H}"/><map znear="0.05" zfar="400"/>
       <quality offsamples="0"/></visual>
      <worldbody><geom type="plane" size="500 500 0.1"/>
       <geom type="box" pos="{face_x + 0.5} 0 {top / 2}" size="0.5 {half_y} {top / 2}"/>
       <body name="ego" pos="0 0 {h_cam}" quat="{q[0]} {q[1]} {q[2]} {q[3]}"><camera name="cam" fovy="60"/></body>
      </worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    r = sim.MujocoRGBDRenderer(model, H, W)
    try:
        _, depth = r.render(data)
    finally:
        r.close()
    K = sim.SimConfig(height=H, width=W, fovy_deg=60).K
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(y > 0, h_cam / y, np.inf)
    t_box = np.full_like(x, face_x)
    hit_box = (np.abs(face_x * x) <= half_y) & (h_cam - face_x * y >= 0) & (h_cam - face_x * y <= top)
    t_box[~hit_box] = np.inf
    expect = np.minimum(t_ground, t_box)
    expect[~np.isfinite(expect)] = np.nan
    # compare away from silhouette edges (a pixel there covers two surfaces)
    pad = np.pad(expect, 1, mode="edge")
    nb = np.stack([pad[1:-1, :-2], pad[1:-1, 2:], pad[:-2, 1:-1], pad[2:, 1:-1]])
    with np.errstate(invalid="ignore"):
        smooth = np.all(np.abs(nb - expect) < 0.2 * expect, axis=0) & np.isfinite(expect) & (expect < 300)
    assert smooth.sum() > 0.5 * H * W
    rel = np.abs(depth[smooth] - expect[smooth]) / expect[smooth]
    assert np.nanmax(rel) < 0.01, f"max relative depth error {np.nanmax(rel):.4f}"
    assert np.median(rel) < 1e-3
    # the box face is a fronto-parallel plane: constant z-depth
    face = hit_box & smooth & (t_box < t_ground)
    assert face.sum() > 50
    np.testing.assert_allclose(depth[face], face_x, rtol=0.01)
    # sky (above the box, nothing before the far plane) is invalid
    sky = ~np.isfinite(expect)
    assert sky.sum() > 0 and np.isnan(depth[sky]).mean() > 0.95


def test_depth_from_buffer_inverse():
    n, f = 0.05, 400.0
    z = np.array([0.05, 0.5, 7.5, 100.0, 399.0])
    b = n * (f - z) / (z * (f - n))
    np.testing.assert_allclose(sim.depth_from_buffer(b.astype(np.float32), n, f), z, rtol=1e-5)
    assert np.isnan(sim.depth_from_buffer(np.zeros(1, np.float32), n, f)[0])


def test_intrinsics_square_pixels_centre():
    K = sim.SimConfig(height=64, width=96, fovy_deg=60).K
    assert K[0, 0] == K[1, 1] == pytest.approx(32 / math.tan(math.radians(30)))
    assert (K[0, 2], K[1, 2]) == (47.5, 31.5)


def test_sequence_format_and_motion(gl):
    cfg = sim.SimConfig(height=32, width=32, frames=6, scene="street", antialias=False, shadows=False)
    seq = sim.simulate_sequence(cfg, seed=3)
    assert seq.rgb.shape == (6, 32, 32, 3) and seq.rgb.dtype == np.uint8
    assert seq.depth.shape == (6, 32, 32) and seq.depth.dtype == np.float32
    assert seq.poses.shape == (6, 4, 4) and seq.K.shape == (3, 3)
    assert np.all(np.diff(seq.stamps_ns) == 100_000_000)
    valid = np.isfinite(seq.depth)
    assert 0.3 < valid.mean() < 1.0 and np.all(seq.depth[valid] > 0)
    R = seq.poses[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    # optical z (forward) points along the motion; optical y (down) points down
    step = seq.poses[-1, :3, 3] - seq.poses[0, :3, 3]
    assert np.linalg.norm(step) > 1.0
    assert np.dot(step / np.linalg.norm(step), seq.poses[0, :3, 2]) > 0.8
    assert seq.poses[0, 2, 1] < -0.9
    assert seq.meta["scene"] == "street" and seq.meta["seed"] == 3


def test_deterministic_and_seed_dependent(gl):
    a = sim.quick_frames(3, (32, 32), seed=11, scene="yard")
    b = sim.quick_frames(3, (32, 32), seed=11, scene="yard")
    c = sim.quick_frames(3, (32, 32), seed=12, scene="yard")
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.rgb, fb.rgb)
        np.testing.assert_array_equal(fa.depth, fb.depth)
        assert fa.stamp_ns == fb.stamp_ns
    assert not np.array_equal(a[0].rgb, c[0].rgb)


def test_generate_and_cli(gl, tmp_path):
    from click.testing import CliRunner

    from syncvp_core.data.cli import sim as sim_cmd

    res = CliRunner().invoke(sim_cmd, ["--out", str(tmp_path / "s"), "-n", "2", "--frames", "3", "--height",
                                       "32", "--width", "48", "--fast", "-j", "1", "--seed", "5"])
    assert res.exit_code == 0, res.output
    files = sim.list_sequences(tmp_path / "s")
    assert [f.name for f in files] == ["seq_00000.npz", "seq_00001.npz"]
    seq = sim.SimSequence.load(files[1])
    assert seq.rgb.shape == (3, 32, 48, 3)
    meta = json.loads((tmp_path / "s" / "sim_meta.json").read_text())
    assert meta["seed"] == 5 and len(meta["sequences"]) == 2
    again = sim.simulate_sequence(sim.SimConfig(**seq.meta["config"]), seq.meta["seed"])
    np.testing.assert_array_equal(again.rgb, seq.rgb)
    assert "--bag-out" in CliRunner().invoke(sim_cmd, ["--help"]).output


def test_bad_config():
    with pytest.raises(sim.SimError, match="scene"):
        sim.SimConfig(scene="moon")
    with pytest.raises(sim.SimError):
        sim.SimConfig(height=2)


def test_generate_resumes(gl, tmp_path):
    cfg = sim.SimConfig(height=16, width=16, frames=2, antialias=False, shadows=False)
    out = tmp_path / "s"
    first = sim.generate(out, 2, cfg, seed=4, workers=1, progress=False)
    kept = out / "seq_00000.npz"
    stamp = kept.stat().st_mtime_ns
    (out / "seq_00001.json").unlink()  # as if killed before the second sequence finished
    again = sim.generate(out, 3, cfg, seed=4, workers=1, progress=False)
    assert kept.stat().st_mtime_ns == stamp  # finished: not rendered again
    assert [r["index"] for r in again] == [0, 1, 2] and again[0] == first[0]
    assert sim.SimSequence.load(out / "seq_00001").meta["seed"] == first[1]["seed"]
    # another configuration is not "finished": it is rendered anew
    sim.generate(out, 1, sim.SimConfig(height=16, width=16, frames=3, antialias=False, shadows=False), seed=4,
                 workers=1, progress=False)
    assert kept.stat().st_mtime_ns != stamp
    assert not list(out.glob(".*partial*"))
