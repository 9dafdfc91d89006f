"""Sharded training sets, window datasets, Cityscapes loader (syncvp_core.data.dataset / convert / cityscapes)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from syncvp_core.config import load_model_config
from syncvp_core.data.bag import write_rgbd_bag
from syncvp_core.data.cityscapes import CityscapesError, cityscapes_sequences, disparity_to_depth
from syncvp_core.data.convert import from_bags, from_cityscapes, from_frames
from syncvp_core.data.dataset import (
    DatasetError,
    RGBDDatasetIndex,
    RGBDWindowDataset,
    iter_dataset_frames,
    segments_from_stamps,
)
from syncvp_core.data.encodings import depth_to_mm, mm_to_depth
from syncvp_core.data.frames import RGBDFrame
from syncvp_core.imageops import resize_depth, resize_rgb, scale_intrinsics

K = np.array([[30.0, 0, 15.5], [0, 29.0, 11.5], [0, 0, 1]])
T0 = 1_000_000_000_000
P = 100_000_000


def _frames(n, seed=0, h=24, w=32, gap_after=None):
    rng = np.random.default_rng(seed)
    out = []
    t = T0
    for i in range(n):
        d = rng.uniform(0.5, 6.0, (h, w)).astype(np.float32)
        d[rng.random((h, w)) < 0.1] = np.nan
        out.append(RGBDFrame(t, rng.integers(0, 256, (h, w, 3), dtype=np.uint8), d, K))
        t += P * (5 if gap_after is not None and i == gap_after else 1)
    return out


def test_round_trip_values_metadata(tmp_path):
    a, b = _frames(7, 0), _frames(5, 1)
    from_frames([("alpha", a), ("beta", b)], tmp_path / "ds", (16, 16))
    idx = RGBDDatasetIndex(tmp_path / "ds")
    assert idx.resolution == (16, 16)
    s = idx.by_name["alpha"]
    assert s.frames == 7 and s.rate_hz == pytest.approx(10.0) and s.source_size == [24, 32]
    np.testing.assert_allclose(s.K, scale_intrinsics(K, (24, 32), (16, 16)), atol=1e-6)
    assert 0.8 < s.depth_stats["valid_fraction"] <= 1.0 and 0.5 <= s.depth_stats["min_m"] < s.depth_stats["max_m"]
    arr = idx.load_sequence("alpha")
    np.testing.assert_array_equal(arr["rgb"], resize_rgb(np.stack([f.rgb for f in a]), (16, 16)))
    np.testing.assert_array_equal(arr["depth"], resize_depth(np.stack([f.depth for f in a]), (16, 16)))
    assert arr["stamps_ns"].tolist() == [f.stamp_ns for f in a]
    doc = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert "no crop" in doc["resize_policy"] or "without cropping" in doc["resize_policy"]
    assert len(list(iter_dataset_frames(tmp_path / "ds", "beta"))) == 5


def test_shards_and_segments(tmp_path):
    frames = _frames(12, gap_after=5)
    from_frames([("g", frames)], tmp_path / "ds", (8, 8))
    s = RGBDDatasetIndex(tmp_path / "ds").by_name["g"]
    assert s.segments == [[0, 6], [6, 12]]
    ds = RGBDWindowDataset(tmp_path / "ds", window=4, split="all")
    starts = [st for _, st, _, _ in ds.items]
    assert starts == [0, 1, 2, 6, 7, 8]  # never across the gap
    assert segments_from_stamps(np.array([0, 10, 20, 100, 110])) == [[0, 3], [3, 5]]


def test_split_by_sequence_and_tail(tmp_path):
    seqs = [(f"s{i}", _frames(10, i, 8, 8)) for i in range(4)]
    from_frames(seqs, tmp_path / "ds", (8, 8), val_fraction=0.25, val_tail=0.2, seed=3)
    idx = RGBDDatasetIndex(tmp_path / "ds")
    val = [s for s in idx.sequences if s.split == "val"]
    assert len(val) == 1 and val[0].val_start == -1
    for s in idx.sequences:
        if s.split == "train":
            assert s.val_start == 8  # floor(10 * 0.8)
    train = RGBDWindowDataset(tmp_path / "ds", window=3, split="train")
    valds = RGBDWindowDataset(tmp_path / "ds", window=2, split="val")
    for name, start, step, _ in train.items:
        assert idx.by_name[name].split == "train" and start + 2 * step < 8
    tails = {(n, st) for n, st, _, _ in valds.items if idx.by_name[n].split == "train"}
    assert all(st >= 8 for _, st in tails) and len(tails) == 3
    assert sum(1 for n, _, _, _ in valds.items if n == val[0].name) == 9
    # same split again from the same seed
    from_frames(seqs, tmp_path / "ds2", (8, 8), val_fraction=0.25, val_tail=0.2, seed=3)
    assert [s.name for s in RGBDDatasetIndex(tmp_path / "ds2").sequences if s.split == "val"] == [val[0].name]
    with pytest.raises(DatasetError, match="not among"):
        from_frames(seqs, tmp_path / "ds3", (8, 8), val_sequences=["nope"])


def test_window_tensors_flip_and_modes(tmp_path):
    frames = _frames(9, 2, 8, 12)
    from_frames([("a", frames)], tmp_path / "ds", (8, 12))
    plain = RGBDWindowDataset(tmp_path / "ds", window=3, split="all", augment=False, frame_step=2)
    item = plain[0]
    assert item["rgb"].shape == (3, 3, 8, 12) and item["rgb"].dtype == torch.float32
    assert -1.0 <= float(item["rgb"].min()) and float(item["rgb"].max()) <= 1.0
    assert item["depth"].shape == (3, 8, 12) and torch.isnan(item["depth"]).any()
    assert torch.equal(item["mask"], torch.isfinite(item["depth"]))
    assert item["stamps_ns"].tolist() == [frames[k].stamp_ns for k in (0, 2, 4)]
    expect = torch.from_numpy(frames[2].rgb).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(item["rgb"][1], expect)
    flip = RGBDWindowDataset(tmp_path / "ds", window=3, split="all", augment=True, frame_step=2)
    torch.manual_seed(0)
    flipped = [flip[0] for _ in range(8)]
    f = next(x for x in flipped if not torch.equal(x["rgb"], item["rgb"]))
    assert torch.equal(f["rgb"], item["rgb"].flip(-1))
    assert torch.equal(f["mask"], item["mask"].flip(-1))
    assert torch.allclose(f["depth"].nan_to_num(-7), item["depth"].flip(-1).nan_to_num(-7))
    assert float(f["K"][0, 2]) == pytest.approx(11 - float(item["K"][0, 2]))
    cfg = load_model_config("tiny")
    norm = RGBDWindowDataset(tmp_path / "ds", window=3, split="all", augment=False, frame_step=2,
                             depth_mode="normalized", depth_cfg=cfg.depth)[0]
    assert torch.isfinite(norm["depth"]).all() and float(norm["depth"].abs().max()) <= 1.0
    assert torch.equal(norm["mask"], item["mask"])
    assert (norm["depth"][~norm["mask"]] == -1).all()


def test_for_model_and_dataloader(tmp_path):
    cfg = load_model_config("tiny")
    n = cfg.context_frames + cfg.chunk_frames
    frames = [RGBDFrame(T0 + i * P // 3, f.rgb, f.depth, K) for i, f in enumerate(_frames(3 * n + 2, 4, 8, 8))]
    from_frames([("a", frames)], tmp_path / "ds", tuple(cfg.resolution))
    ds = RGBDWindowDataset.for_model(tmp_path / "ds", cfg, split="all", stride=2)
    assert ds.window == n and ds.items[0][2] == 3  # 30 Hz data, 10 Hz model -> every 3rd frame
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=True)
    batch = next(iter(loader))
    assert batch["rgb"].shape == (2, n, 3, *cfg.resolution) and batch["depth"].shape == (2, n, *cfg.resolution)
    from_frames([("a", frames)], tmp_path / "ds2", (8, 8))
    with pytest.raises(DatasetError, match="resolution"):
        RGBDWindowDataset.for_model(tmp_path / "ds2", cfg)
    short = RGBDWindowDataset(tmp_path / "ds2", window=100)
    assert len(short) == 0 and "no 100-frame window" in short.skipped[0]


def test_writer_refuses_and_errors(tmp_path):
    from_frames([("a", _frames(2))], tmp_path / "ds", (8, 8))
    with pytest.raises(DatasetError, match="already holds a dataset"):
        from_frames([("a", _frames(2))], tmp_path / "ds", (8, 8))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("keep")
    with pytest.raises(DatasetError, match="not a dataset"):
        from_frames([("a", _frames(2))], tmp_path / "other", (8, 8))
    bad = _frames(3)
    bad[2] = RGBDFrame(bad[0].stamp_ns, bad[2].rgb, bad[2].depth, K)
    with pytest.raises(DatasetError, match="not after"):
        from_frames([("a", bad)], tmp_path / "ds4", (8, 8))
    with pytest.raises(DatasetError, match="no dataset.json"):
        RGBDDatasetIndex(tmp_path / "other")


def test_from_bag_equals_from_frames(tmp_path):
    frames = _frames(6, 5, 12, 16)
    for f in frames:  # the bag stores millimetres
        f.depth = mm_to_depth(depth_to_mm(f.depth))
    write_rgbd_bag(tmp_path / "run1", frames)
    from_bags([tmp_path / "run1"], tmp_path / "a", (8, 8), progress=False)
    from_frames([("run1", frames)], tmp_path / "b", (8, 8))
    A, B = RGBDDatasetIndex(tmp_path / "a"), RGBDDatasetIndex(tmp_path / "b")
    for k in ("rgb", "depth", "stamps_ns"):
        np.testing.assert_array_equal(A.load_sequence("run1")[k], B.load_sequence("run1")[k])
    assert A.by_name["run1"].K == B.by_name["run1"].K
    assert A.by_name["run1"].source["sync"]["pairs"] == 6


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco not installed")
def test_from_sim(tmp_path):
    from syncvp_core.data import sim
    from syncvp_core.data.convert import from_sim

    try:
        sim.select_gl_backend()
    except sim.SimError as e:
        pytest.skip(str(e))
    cfg = sim.SimConfig(height=32, width=32, frames=4, antialias=False, shadows=False, scene="yard")
    sim.generate(tmp_path / "s", 2, cfg, seed=1, workers=1, progress=False)
    from_sim(tmp_path / "s", tmp_path / "ds", (16, 16), progress=False, val_fraction=0.5)
    idx = RGBDDatasetIndex(tmp_path / "ds")
    assert [s.name for s in idx.sequences] == ["seq_00000", "seq_00001"]
    assert {s.split for s in idx.sequences} == {"train", "val"}
    arr = idx.load_sequence("seq_00000")
    assert arr["poses"].shape == (4, 4, 4) and arr["rgb"].shape == (4, 16, 16, 3)
    assert idx.sequences[0].source["kind"] == "sim" and idx.sequences[0].rate_hz == 10.0
    item = RGBDWindowDataset(tmp_path / "ds", window=2, split="all")[0]
    assert item["rgb"].shape == (2, 3, 16, 16)
    # the simulator's kinematic sequences may train backwards: the same windows, frames last-first
    assert idx.sequences[0].extra["time_reversible"] and idx.sequences[0].extra["motion"] == "auto"
    both = RGBDWindowDataset(tmp_path / "ds", window=3, split="all", reverse_time=True, augment=False)
    fwd = RGBDWindowDataset(tmp_path / "ds", window=3, split="all", augment=False)
    assert len(both) == 2 * len(fwd)
    k = next(i for i, it in enumerate(both.items) if it[3])
    a, b = both[k], fwd[[it[:3] for it in fwd.items].index(both.items[k][:3])]
    assert a["reversed"] and not b["reversed"]
    np.testing.assert_array_equal(a["rgb"].numpy(), b["rgb"].numpy()[::-1])
    np.testing.assert_array_equal(a["stamps_ns"].numpy(), b["stamps_ns"].numpy()[::-1])


# ----------------------------------------------------------------------------------------------------
# Cityscapes


def _fake_cityscapes(root, split="train", frames=((1, range(5, 9)), (2, range(20, 23))), with_gap=False):
    from PIL import Image

    rng = np.random.default_rng(0)
    cam = {"extrinsic": {"baseline": 0.21, "pitch": 0.03, "roll": 0, "x": 1.7, "y": 0.1, "yaw": 0, "z": 1.2},
           "intrinsic": {"fx": 2262.5, "fy": 2265.3, "u0": 1096.9, "v0": 513.1}}
    disp = {}
    for seq, numbers in frames:
        numbers = list(numbers)
        if with_gap:
            numbers = numbers[:2] + [n + 10 for n in numbers[2:]]
        for d in ("leftImg8bit_sequence", "disparity_sequence", "camera"):
            (root / d / split / "aachen").mkdir(parents=True, exist_ok=True)
        (root / "camera" / split / "aachen" / f"aachen_{seq:06d}_{numbers[0]:06d}_camera.json").write_text(
            json.dumps(cam))
        for n in numbers:
            stem = f"aachen_{seq:06d}_{n:06d}"
            Image.fromarray(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)).save(
                root / "leftImg8bit_sequence" / split / "aachen" / f"{stem}_leftImg8bit.png")
            p = rng.integers(0, 20000, (8, 16)).astype(np.uint16)
            p[0, :3] = [0, 1, 257]
            Image.fromarray(p).save(root / "disparity_sequence" / split / "aachen" / f"{stem}_disparity.png")
            disp[stem] = p
    return disp


def test_cityscapes_depth_and_sequences(tmp_path):
    disp = _fake_cityscapes(tmp_path)
    seqs = cityscapes_sequences(tmp_path, "train")
    assert [s.name for s in seqs] == ["aachen_000001_000005", "aachen_000002_000020"]
    assert [len(s) for s in seqs] == [4, 3]
    frames = list(seqs[0].frames())
    p = disp["aachen_000001_000005"]
    d = frames[0].depth
    assert np.isnan(d[0, 0]) and np.isnan(d[0, 1])  # p = 0 invalid, p = 1 -> zero disparity
    assert d[0, 2] == pytest.approx(0.21 * 2262.5 / 1.0)  # p = 257 -> 1 px
    ok = p > 1
    np.testing.assert_allclose(d[ok], 0.21 * 2262.5 / ((p[ok].astype(np.float64) - 1) / 256), rtol=1e-6)
    assert frames[0].K[0, 0] == 2262.5 and (frames[1].stamp_ns - frames[0].stamp_ns) == round(1e9 / 17)
    np.testing.assert_allclose(disparity_to_depth(np.array([257]), 0.2, 100.0), [20.0])
    from_cityscapes(tmp_path, tmp_path / "ds", (8, 8), splits=("train",), progress=False)
    idx = RGBDDatasetIndex(tmp_path / "ds")
    assert idx.sequences[0].rate_hz == pytest.approx(17.0, rel=1e-3) and idx.sequences[0].frames == 4


def test_cityscapes_gaps_and_errors(tmp_path):
    _fake_cityscapes(tmp_path, frames=((3, range(0, 4)),), with_gap=True)
    seqs = cityscapes_sequences(tmp_path, "train")
    assert [len(s) for s in seqs] == [2, 2]  # frame numbers jump: split, never bridged
    next((tmp_path / "disparity_sequence").rglob("*_disparity.png")).unlink()
    with pytest.raises(CityscapesError, match="missing disparity"):
        cityscapes_sequences(tmp_path, "train")
    with pytest.raises(CityscapesError, match="leftImg8bit_sequence/val"):
        cityscapes_sequences(tmp_path, "val")
