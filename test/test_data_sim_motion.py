"""Camera-motion profiles of the simulator (syncvp_core.data.sim.profiles): stops hold still, bumps pitch the
camera, pans turn on the spot, seeded, no camera moves faster than its kind can; one rendered sequence per
check where the rendered poses matter."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from syncvp_core.data import sim
from syncvp_core.data.mix import CAMERA_SPEED_BOUND_MPS
from syncvp_core.data.sim.profiles import BUMP_S
from syncvp_core.data.sim.sequence import _Rig, camera_track, max_camera_speed

FRAMES = 80


def _plan(motion: str, seed: int) -> sim.MotionPlan:
    return sim.plan_motion(sim.SimConfig(frames=FRAMES, motion=motion), np.random.default_rng(seed))


def _find(motion: str, want) -> tuple[int, sim.MotionPlan]:
    """The first seed whose plan satisfies ``want`` (planning is cheap; seeds stay fixed across runs)."""
    for seed in range(200):
        plan = _plan(motion, seed)
        if want(plan):
            return seed, plan
    raise AssertionError(f"no seed in 0..199 gives the wanted {motion} plan")


def _still_frames(plan: sim.MotionPlan) -> list[int]:
    """Frames k (and k+1) inside a stop hold with no bump ringing."""
    tr, dt = plan.traj, plan.dt_frame / 10
    bump_steps = [int(round(e["t_s"] / dt)) for e in tr.events]
    quiet = np.ones(len(tr.v), bool)
    for b in bump_steps:
        quiet[b: b + int(round(BUMP_S / dt)) + 1] = False
    lab = tr.labels
    return [k for k in range(FRAMES - 1)
            if all(lab[j] == "stop" and quiet[j] for j in range(plan.idx[k], plan.idx[k + 1] + 1))]


@pytest.mark.parametrize("motion", ["handheld", "robot", "car"])
def test_stop_holds_still_and_plans_are_seeded(motion):
    seed, plan = _find(motion, lambda p: len(_still_frames(p)) >= 3)
    tr = plan.traj
    stop = tr.labels == "stop"
    assert np.all(tr.v[stop] == 0.0) and np.all(tr.w[stop] == 0.0) and np.all(tr.acc[stop] == 0.0)
    again = _plan(motion, seed)
    np.testing.assert_array_equal(again.traj.x, tr.x)
    np.testing.assert_array_equal(again.traj.offsets.pitch, tr.offsets.pitch)
    assert not np.array_equal(_plan(motion, seed + 1).traj.x, tr.x)
    # every profile also moves: a segment other than stop has speed
    assert tr.v.max() > sim.PROFILES[motion].speed[0] * 0.9


def test_bumps_pitch_the_camera():
    _, plan = _find("car", lambda p: any(e["t_s"] < (FRAMES - 10) * p.dt_frame for e in p.traj.events))
    tr, dt = plan.traj, plan.dt_frame / 10
    first = int(round(tr.events[0]["t_s"] / dt))
    assert np.all(tr.offsets.pitch[:first] == 0.0)
    ring = np.abs(tr.offsets.pitch[first: first + int(BUMP_S / dt)])
    assert math.degrees(ring.max()) > 0.3
    # the rendered camera pose carries it: the optical axis pitches by the offset
    k = int(np.argmax(np.abs(tr.offsets.pitch[plan.idx])))
    rig = _Rig(1.5, 0.0, 0.0, 1.0)
    R_bump, _ = rig.pose(plan, k, 0.0)
    saved = tr.offsets.pitch.copy()
    tr.offsets.pitch[:] = 0.0
    R_flat, _ = rig.pose(plan, k, 0.0)
    tr.offsets.pitch[:] = saved
    fwd_b, fwd_f = -R_bump[:, 2], -R_flat[:, 2]
    d_pitch = math.asin(np.clip(fwd_b[2], -1, 1)) - math.asin(np.clip(fwd_f[2], -1, 1))
    assert d_pitch == pytest.approx(saved[plan.idx[k]], abs=1e-9) and abs(d_pitch) > 1e-3


def test_pan_turns_on_the_spot():
    _, plan = _find("robot", lambda p: np.sum(p.traj.labels[p.idx] == "pan") >= 10)
    tr = plan.traj
    pan = np.nonzero((tr.labels == "pan") & (tr.v == 0.0))[0]
    pan = pan[pan < plan.idx[-1]]
    pan = pan[: int(np.argmax(np.diff(pan) > 1)) + 1] if np.any(np.diff(pan) > 1) else pan  # the first pan
    assert len(pan) > 20
    assert np.ptp(tr.x[pan]) == 0.0 and np.ptp(tr.y[pan]) == 0.0
    assert np.ptp(tr.yaw[pan]) > 0.1  # it turned while standing


def _standing_pan_frames(plan: sim.MotionPlan) -> list[int]:
    tr = plan.traj
    return [k for k in range(FRAMES - 1) if all(tr.labels[j] == "pan" and tr.v[j] == 0.0
                                                for j in range(plan.idx[k], plan.idx[k + 1] + 1))]


def test_walker_beside_the_path_pans_on_the_spot():
    seed, plan = _find("handheld", lambda p: p.scene == "street" and len(_standing_pan_frames(p)) >= 5)
    poses, _ = camera_track(sim.SimConfig(frames=FRAMES, motion="handheld"), seed)
    pan = _standing_pan_frames(plan)
    for k in pan:  # a lane's width off the path, and still the camera only turns
        np.testing.assert_array_equal(poses[k, :2, 3], poses[k + 1, :2, 3])
    assert not np.allclose(poses[pan[0], :3, :3], poses[pan[-1] + 1, :3, :3], atol=1e-3)


# The parts of config/train/motion_mix.yaml (motion, scene, master seed). Before SIM_VERSION 2, 7 of the 24
# handheld sequences (00006, 08, 09, 18, 20, 21, 23: street) jumped 1-4 m in a frame where a walker a lane
# off the path moved off after turning on the spot, and two more ran at 3.2-3.4 m/s through tight turns.
RECIPE = [("handheld", "mixed", 1201), ("robot", "yard", 1202), ("car", "street", 1203), ("auto", "mixed", 1204)]


@pytest.mark.parametrize("motion,scene,seed", RECIPE)
def test_camera_never_moves_faster_than_its_kind_can(motion, scene, seed):
    cfg = sim.SimConfig(frames=60, scene=scene, motion=motion)
    speeds = [max_camera_speed(*camera_track(cfg, s)) for s in sim.sequence_seeds(seed, 24)]
    assert set(CAMERA_SPEED_BOUND_MPS) == set(sim.MOTIONS)  # make-mix checks every motion
    bound = CAMERA_SPEED_BOUND_MPS[motion]
    assert max(speeds) <= bound, {f"seq_{i:05d}": round(v, 2) for i, v in enumerate(speeds) if v > bound}
    assert max(speeds) > 0.3 * bound  # the bound is near what the camera does, not vacuous


def test_handheld_shakes_only_while_walking():
    _, plan = _find("handheld", lambda p: len(_still_frames(p)) >= 3)
    tr = plan.traj
    walking = tr.v > 0.5 * sim.PROFILES["handheld"].speed[1]
    assert np.std(np.diff(tr.offsets.roll[walking])) > 0
    still = _still_frames(plan)
    steps = np.concatenate([np.arange(plan.idx[k], plan.idx[k + 1] + 1) for k in still])
    for arr in (tr.offsets.yaw, tr.offsets.roll, tr.offsets.lift, tr.offsets.pitch):
        assert np.ptp(arr[steps]) == 0.0


def test_bad_motion_name():
    with pytest.raises(sim.SimError, match="motion"):
        sim.SimConfig(motion="bicycle")


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco is not installed")
def test_rendered_stop_has_zero_camera_velocity():
    try:
        sim.select_gl_backend()
    except sim.SimError as e:
        pytest.skip(str(e))
    seed, plan = _find("car", lambda p: len(_still_frames(p)) >= 2)
    k = _still_frames(plan)[0]
    cfg = sim.SimConfig(height=16, width=16, frames=FRAMES, motion="car", antialias=False, shadows=False)
    seq = sim.simulate_sequence(cfg, seed, only_frames=[k - 1, k, k + 1])
    np.testing.assert_array_equal(seq.poses[1], seq.poses[2])  # standing: the same pose
    assert seq.meta["motion"] == "car" and seq.meta["frame_segments"][1:] == ["stop", "stop"]
    assert seq.meta["time_reversible"] == (not seq.meta["bumps"])
