"""Training data that teaches motion: time-reversed clips only where plausible and never from held-out
tails, the simulator part of a data mix made resumably from a train config, the mix recorded for the
checkpoint."""
from __future__ import annotations

import dataclasses
import fnmatch
import importlib.util
import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from syncvp_core.config import ConfigError, load_model_config
from syncvp_core.data.dataset import DatasetWriter
from syncvp_core.data.frames import RGBDFrame
from syncvp_core.data.mix import CAMERA_SPEED_BOUND_MPS, SimMix, heldout_sim_sequences
from syncvp_core.data.mix import make_mix as make_mix_parts
from syncvp_core.training.config import load_train_config
from syncvp_core.training.data import (
    ClipIndex,
    DataError,
    Sequence,
    describe_mix,
    load_sequences,
    mix_table,
    split_point,
)
from syncvp_core.training.dist import DistInfo


def _seq(name: str, n: int, reversible: bool) -> Sequence:
    rgb = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 3)).copy()
    dep = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None] + 1, (n, 4, 4)).copy()
    return Sequence(name, rgb, dep, 10.0, "fp", reversible=reversible, source={"kind": "folder"})


def test_reversed_clips_only_where_plausible_and_never_from_the_tail():
    a, b = _seq("a", 30, True), _seq("b", 30, False)
    fwd = ClipIndex([a, b], 5, 10.0, 0.2)
    both = ClipIndex([a, b], 5, 10.0, 0.2, reverse_time=True)
    tail = split_point(30, 0.2)  # 24: frames 24..29 are held out
    assert len(fwd) == 2 * (tail - 4) and fwd.n_reversed == 0
    assert len(both) == len(fwd) + (tail - 4) and both.n_reversed == tail - 4
    assert {both.seqs[si].name for si, _, _, rev in both.items if rev} == {"a"}
    for i, (_, start, _, rev) in enumerate(both.items):
        rgb, dep = both.frames(i)
        frames = rgb[:, 0, 0, 0].astype(int)
        assert frames.max() < tail  # the held-out tail stays out, in both directions
        want = np.arange(start, start + 5)
        np.testing.assert_array_equal(frames, want[::-1] if rev else want)
        np.testing.assert_array_equal(dep[:, 0, 0], (want[::-1] if rev else want) + 1)
        sub, _ = both.frames(i, length=2, offset=3)  # the clip's frames 3 and 4, in its own time order
        np.testing.assert_array_equal(sub[:, 0, 0, 0], frames[3:5])
    mix = describe_mix([a, b], both, 0.2, reverse_time=True)
    assert mix["groups"]["folder"] == {"sequences": 2, "train_frames": 2 * tail, "clips": len(both),
                                       "reversed_clips": tail - 4}
    assert [r["reversible"] for r in mix["sequences"]] == [True, False] and mix["reverse_time"] is True
    card = mix_table({**mix, "cache_hflip": True, "start_step": 0})
    assert f"| folder | 2 | {2 * tail} | {len(both)} | {tail - 4} |" in card
    assert "every start frame, plus a mirrored copy of every clip" in card


def test_dataset_marks_and_name_patterns_decide_reversibility(tmp_path):
    w = DatasetWriter(tmp_path / "ds", (8, 8))
    for name, rev in (("sim_a", True), ("sim_b", False), ("real_c", False)):
        frames = [RGBDFrame(1000 + i * 100_000_000, np.full((8, 8, 3), i, np.uint8), np.ones((8, 8), np.float32),
                            None) for i in range(12)]
        w.add_sequence(name, frames, {"kind": "sim" if name.startswith("sim") else "bag"},
                       extra={"time_reversible": rev, "motion": "car"} if name.startswith("sim") else {})
    w.finalize()
    cfg = load_model_config("tiny", ["resolution=[8,8]"])
    seqs = load_sequences([], cfg, False, [tmp_path / "ds"], reversible=("*/real_*",))
    got = {s.name.split("/")[1]: (s.reversible, s.source["kind"], s.source.get("motion")) for s in seqs}
    assert got == {"sim_a": (True, "sim", "car"), "sim_b": (False, "sim", "car"), "real_c": (True, "bag", None)}
    mix = describe_mix(seqs, ClipIndex(seqs, 4, 10.0, 0.2, reverse_time=True), 0.2)
    assert set(mix["groups"]) == {"sim/car", "bag"}
    rows = {r["name"].split("/")[1]: r for r in mix["sequences"]}
    assert rows["sim_a"]["reversed_clips"] * 2 == rows["sim_a"]["clips"] > 0
    assert rows["sim_b"]["reversed_clips"] == 0 and rows["sim_b"]["clips"] > 0
    assert rows["real_c"]["reversed_clips"] * 2 == rows["real_c"]["clips"]


def _mix_yaml(tmp_path, folder, parts: str) -> str:
    p = tmp_path / "mix.yaml"
    p.write_text(f"""base: smoke
run_dir: {tmp_path / 'run'}
data:
  folders: [{folder}]
  reverse_time: true
  reversible: ['seq*']
  sim_root: {tmp_path / 'sim'}
  sim_mix:
{parts}
""")
    return str(p)


PARTS = """    - {name: hand, motion: handheld, scene: yard, sequences: 3, frames: 12, seed: 7, height: 16, width: 16,
       fast: true, val_fraction: 0.34}
    - {name: car, motion: car, sequences: 3, frames: 12, seed: 8, height: 16, width: 16, fast: true,
       val_fraction: 0.34}"""


def test_bad_mix_is_a_config_error(tmp_path):
    bad = _mix_yaml(tmp_path, "x", "    - {name: a, motion: bicycle}")
    with pytest.raises(ConfigError, match="motion"):
        load_train_config(bad)
    twice = _mix_yaml(tmp_path, "x", "    - {name: a}\n    - {name: a}")
    with pytest.raises(ConfigError, match="unique"):
        load_train_config(twice)


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco is not installed")
def test_make_mix_resumes_and_training_records_the_mix(tmp_path):
    from syncvp_core.data import sim
    from syncvp_core.training.cli import make_mix
    from syncvp_core.training.pipeline import Session
    from syncvp_core.training.synthetic import write_synthetic_folder

    try:
        sim.select_gl_backend()
    except sim.SimError as e:
        pytest.skip(str(e))
    folder = write_synthetic_folder(tmp_path / "seq", n_frames=40)
    cfg_path = _mix_yaml(tmp_path, folder, PARTS)
    tcfg = load_train_config(cfg_path)
    with pytest.raises(DataError, match="make-mix"):
        Session(tcfg, DistInfo()).sequences()

    res = CliRunner().invoke(make_mix, ["--config", cfg_path, "--limit", "2", "-j", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    first = tmp_path / "sim" / "hand" / "raw" / "seq_00000.npz"
    stamp = first.stat().st_mtime_ns
    res = CliRunner().invoke(make_mix, ["--config", cfg_path, "-j", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert first.stat().st_mtime_ns == stamp  # resumed: the sample was kept, one sequence added per part
    manifest = json.loads((tmp_path / "sim" / "mix_manifest.json").read_text())
    for part in ("hand", "car"):
        info = manifest["parts"][part]
        assert info["train_sequences"] == 2 and len(info["val_sequences"]) == 1 and info["frames"] == 36
    assert manifest["parts"]["hand"]["scenes"] == ["yard"] and manifest["parts"]["car"]["scenes"] == ["street"]
    for part, bound in (("hand", 3.0), ("car", 20.0)):
        info = manifest["parts"][part]
        assert 0 < info["max_camera_speed_mps"] <= info["camera_speed_bound_mps"] == bound
        assert info["too_fast_sequences"] == []
    held = heldout_sim_sequences(tcfg.data.sim_root, tcfg.data.sim_mix)  # what eval-heldout scores
    assert [(p.parent.parent.name, p.stem) for p in held] == [
        ("hand", manifest["parts"]["hand"]["val_sequences"][0]), ("car", manifest["parts"]["car"]["val_sequences"][0])]
    assert all(p.exists() for p in held)

    s = Session(tcfg, DistInfo())
    mix = s.base_meta()["data_mix"]
    assert set(mix["groups"]) == {"folder", "sim/handheld", "sim/car"}
    assert mix["groups"]["sim/handheld"]["sequences"] == 2  # the validation sequence never trains
    assert mix["groups"]["folder"]["reversed_clips"] > 0
    assert mix["groups"]["folder"]["train_frames"] == split_point(40, 0.2)
    assert mix["reverse_time"] and mix["cache_hflip"] and mix["clips"] == len(s.clips(6))
    sims = [r for r in mix["sequences"] if r["group"].startswith("sim/")]
    assert all(r["reversed_clips"] == (r["clips"] // 2 if r["reversible"] else 0) for r in sims)

    fewer = tuple(dataclasses.replace(p, sequences=2) for p in tcfg.data.sim_mix)  # the recipe shrank
    make_mix_parts(tcfg.data.sim_root, fewer, (16, 16), workers=1, progress=False)
    smaller = json.loads((tmp_path / "sim" / "mix_manifest.json").read_text())["parts"]["hand"]
    assert smaller["frames"] == 24 and smaller["train_sequences"] + len(smaller["val_sequences"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco is not installed")
def test_make_mix_renders_older_simulator_output_again_and_warns_of_fast_cameras(tmp_path, monkeypatch, caplog):
    from syncvp_core.data import sim
    from syncvp_core.data.sim.sequence import SIM_VERSION

    try:
        sim.select_gl_backend()
    except sim.SimError as e:
        pytest.skip(str(e))
    part = SimMix(name="car", motion="car", sequences=2, frames=6, seed=8, height=16, width=16, fast=True,
                  val_fraction=0.5)
    root = tmp_path / "sim"

    def make() -> dict:
        return json.loads(make_mix_parts(root, (part,), (16, 16), workers=1, progress=False).read_text())

    assert make()["sim_version"] == SIM_VERSION
    raw, doc = root / "car" / "raw", root / "car" / "dataset" / "dataset.json"
    older, current = raw / "seq_00000", raw / "seq_00001"
    for path, key in ((older.with_suffix(".json"), None), (doc, "info")):  # as written before SIM_VERSION
        d = json.loads(path.read_text())
        (d[key] if key else d).pop("sim_version")
        path.write_text(json.dumps(d))
    stamps = {p: p.with_suffix(".npz").stat().st_mtime_ns for p in (older, current)}
    # seq_00000 stands still; seq_00001 drives at 4.3 m/s: a bound below that flags it
    monkeypatch.setitem(CAMERA_SPEED_BOUND_MPS, "car", 1.0)
    with caplog.at_level(logging.WARNING, logger="syncvp_core.data.mix"):
        info = make()["parts"]["car"]
    assert json.loads(older.with_suffix(".json").read_text())["sim_version"] == SIM_VERSION
    assert older.with_suffix(".npz").stat().st_mtime_ns != stamps[older]  # rendered again
    assert current.with_suffix(".npz").stat().st_mtime_ns == stamps[current]  # kept
    assert json.loads(doc.read_text())["info"]["sim_version"] == SIM_VERSION  # converted again
    assert info["too_fast_sequences"] == ["seq_00001"] and info["camera_speed_bound_mps"] == 1.0
    assert info["max_camera_speed_mps"] == pytest.approx(4.33, abs=0.01)
    assert "part car (motion car)" in caplog.text and "1 of 2 sequences" in caplog.text


def test_motion_mix_recipe_is_valid():
    tcfg = load_train_config("motion_mix")
    d = tcfg.data
    # Mirrored copies train the autoencoders; the diffusion cache has none (measured not to help, MODEL_CARD.md).
    assert d.holdout_fraction == 0.2 and d.reverse_time and d.hflip and not d.cache_hflip and d.start_step == 0
    assert {p.motion for p in d.sim_mix} >= {"handheld", "robot", "car"}
    assert all(p.val_fraction > 0 for p in d.sim_mix)  # held-out simulator sequences exist
    names = [f.rstrip("/").split("/")[-1] for f in d.folders]
    assert all(any(fnmatch.fnmatch(n, pat) for pat in d.reversible) for n in names)
    assert len(d.all_datasets()) == len(d.sim_mix) and not d.datasets
