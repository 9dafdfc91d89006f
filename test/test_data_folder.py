"""RGB-D folder importers: real-rgbd and TUM RGB-D layouts, to-bag, bad input (syncvp_core.data.folder)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from syncvp_core.cli import main as cli
from syncvp_core.data.bag import bag_info, read_rgbd_bag
from syncvp_core.data.convert import from_bags, from_folders
from syncvp_core.data.dataset import RGBDDatasetIndex
from syncvp_core.data.folder import FolderError, folder_to_bag, read_folder

REAL_TUM = Path("/work/shared/data/real-rgbd/tum_freiburg1_xyz")
H, W = 12, 16
FX, FY, CX, CY = 20.5, 21.0, 7.25, 5.75


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    mm = rng.integers(300, 9000, (n, H, W)).astype(np.uint16)
    mm[:, 0, :4] = 0  # invalid
    return rgb, mm


def write_real_rgbd(root: Path, rgb, mm, cs, ds, intr: str | None = None, spelling: str = "color") -> Path:
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    lines = [f"index,{spelling}_stamp_s,depth_stamp_s,{spelling}_file,depth_file"]
    for i in range(len(rgb)):
        Image.fromarray(rgb[i]).save(root / "rgb" / f"{i:06d}.png")
        Image.fromarray(mm[i]).save(root / "depth" / f"{i:06d}.png")
        lines.append(f"{i},{cs[i]},{ds[i]},rgb/{i:06d}.png,depth/{i:06d}.png")
    (root / "frames.csv").write_text("\n".join(lines) + "\n")
    (root / "intrinsics.yaml").write_text(intr if intr is not None else
                                          f"width: {W}\nheight: {H}\nfx: {FX}\nfy: {FY}\ncx: {CX}\ncy: {CY}\n"
                                          "depth_unit: mm\n")
    return root


def write_tum(root: Path, rgb, raw5000, cs, ds, intr=True) -> Path:
    """Native TUM layout: files named by stamp, rgb.txt/depth.txt with '#' headers, depth 5000/m."""
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rl = ["# color images", "# file: 'rgbd_dataset_test.bag'", "# timestamp filename"]
    dl = ["# depth maps", "# file: 'rgbd_dataset_test.bag'", "# timestamp filename"]
    for i in range(len(cs)):
        Image.fromarray(rgb[i]).save(root / "rgb" / f"{cs[i]}.png")
        rl.append(f"{cs[i]} rgb/{cs[i]}.png")
    for i in range(len(ds)):
        Image.fromarray(raw5000[i]).save(root / "depth" / f"{ds[i]}.png")
        dl.append(f"{ds[i]} depth/{ds[i]}.png")
    (root / "rgb.txt").write_text("\n".join(rl) + "\n")
    (root / "depth.txt").write_text("\n".join(dl) + "\n")
    if intr:
        (root / "intrinsics.yaml").write_text(f"fx: {FX}\nfy: {FY}\ncx: {CX}\ncy: {CY}\n")
    return root


def _stamps(n, t0=1305031102.175304, period=0.033, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [f"{t0 + i * period + rng.uniform(-jitter, jitter):.6f}" for i in range(n)]


def _ns(s: str) -> int:
    a, b = s.split(".")
    return int(a) * 10**9 + int((b + "000000000")[:9])


def _dataset(path):
    idx = RGBDDatasetIndex(path)
    assert len(idx.sequences) == 1
    s = idx.sequences[0]
    return s, idx.load_sequence(s.name)


@pytest.mark.parametrize("spelling", ["color", "colour"])  # colour_*: files written before the rename
def test_real_rgbd_round_trip(tmp_path, spelling):
    rgb, mm = _images(6)
    cs, ds = _stamps(6), _stamps(6, jitter=0.01, seed=1)
    write_real_rgbd(tmp_path / "seq", rgb, mm, cs, ds, spelling=spelling)
    from_folders([tmp_path / "seq"], tmp_path / "ds", (H, W), progress=False)
    s, arr = _dataset(tmp_path / "ds")
    np.testing.assert_array_equal(arr["rgb"], rgb)
    expect = mm.astype(np.float32) / 1000
    expect[mm == 0] = np.nan
    np.testing.assert_array_equal(arr["depth"], expect)
    assert arr["stamps_ns"].tolist() == [_ns(c) for c in cs]
    np.testing.assert_allclose(s.K, [[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    assert s.source["kind"] == "folder:real-rgbd" and s.rate_hz == pytest.approx(1 / 0.033, rel=1e-3)


def test_tum_layout_round_trip_with_association(tmp_path):
    rgb, mm = _images(6, seed=2)
    raw = (mm.astype(np.uint32) * 5).astype(np.uint16)  # TUM: 5000 units per metre
    cs = _stamps(6)
    ds = _stamps(7, t0=1305031102.175304 - 0.008, jitter=0.004, seed=3)  # one extra depth at the end
    # no depth near colour 3 (the next is 25 ms away) -> colour 3 unmatched; depth 6 has no colour
    draw = np.concatenate([raw, raw[:1]])
    keep_d = [0, 1, 2, 4, 5, 6]
    write_tum(tmp_path / "rgbd_dataset_test", rgb, draw[keep_d], cs, [ds[k] for k in keep_d])
    seq = read_folder(tmp_path / "rgbd_dataset_test")
    assert seq.layout == "tum" and seq.units_per_metre == 5000.0
    assert seq.sync_stats.pairs == 5 and seq.sync_stats.unmatched_color == 1
    assert seq.sync_stats.unmatched_depth == 1
    assert "unmatched" in seq.warnings[0]
    from_folders([tmp_path / "rgbd_dataset_test"], tmp_path / "ds", (H, W), progress=False)
    s, arr = _dataset(tmp_path / "ds")
    keep = [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(arr["rgb"], rgb[keep])
    expect = raw[keep].astype(np.float32) / 5000
    expect[raw[keep] == 0] = np.nan
    np.testing.assert_array_equal(arr["depth"], expect)
    assert arr["stamps_ns"].tolist() == [_ns(cs[k]) for k in keep]
    np.testing.assert_allclose(s.K, [[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    assert s.source["sync"]["unmatched_color"] == 1
    # the two layouts of the same frames give the same depth in metres (one unit conversion)
    write_real_rgbd(tmp_path / "same", rgb[keep], mm[keep], [cs[k] for k in keep], [cs[k] for k in keep])
    from_folders([tmp_path / "same"], tmp_path / "ds2", (H, W), progress=False)
    np.testing.assert_array_equal(_dataset(tmp_path / "ds2")[1]["depth"], arr["depth"])


def test_tum_calibration_from_folder_name(tmp_path):
    rgb, mm = _images(2)
    cs = _stamps(2)
    p = write_tum(tmp_path / "rgbd_dataset_freiburg1_desk", rgb, mm, cs, cs, intr=False)
    frames = list(read_folder(p).frames())
    assert frames[0].K[0, 0] == pytest.approx(517.3 * W / 640)
    q = write_tum(tmp_path / "mystery", rgb, mm, cs, cs, intr=False)
    seq = read_folder(q)
    assert list(seq.frames())[0].K is None and any("intrinsics" in w for w in seq.warnings)


@pytest.mark.parametrize("layout", ["real-rgbd", "tum"])
def test_to_bag_then_from_bag_equals_from_folder(tmp_path, layout):
    rgb, mm = _images(5, seed=4)
    cs, ds = _stamps(5), _stamps(5, jitter=0.012, seed=5)
    if layout == "real-rgbd":
        folder = write_real_rgbd(tmp_path / "seq", rgb, mm, cs, ds)
    else:
        folder = write_tum(tmp_path / "seq", rgb, (mm.astype(np.uint32) * 5).astype(np.uint16), cs, ds)
    n = folder_to_bag(folder, tmp_path / "bag", progress=False)
    assert n == 5
    enc = read_rgbd_bag(tmp_path / "bag")
    frames = list(enc)
    assert frames[0].depth_stamp_ns == _ns(ds[0]) and frames[0].stamp_ns == _ns(cs[0])
    assert set(bag_info(tmp_path / "bag").topics) == {"/camera/color/image_raw", "/camera/color/camera_info",
                                                      "/camera/aligned_depth_to_color/image_raw",
                                                      "/camera/aligned_depth_to_color/camera_info"}
    from_bags([tmp_path / "bag"], tmp_path / "a", (8, 8), progress=False, val_tail=0.2)
    from_folders([folder], tmp_path / "b", (8, 8), progress=False, val_tail=0.2)
    (sa, a), (sb, b) = _dataset(tmp_path / "a"), _dataset(tmp_path / "b")
    for k in ("rgb", "depth", "stamps_ns"):
        np.testing.assert_array_equal(a[k], b[k])
    assert sa.K == sb.K and sa.frames == sb.frames and sa.val_start == sb.val_start == 4
    assert sa.segments == sb.segments


def test_shared_tum_slice(tmp_path):
    if not REAL_TUM.exists():
        pytest.skip(f"{REAL_TUM} not available")
    lines = (REAL_TUM / "frames.csv").read_text().splitlines()
    sl = tmp_path / "tum_slice"
    (sl / "rgb").mkdir(parents=True)
    (sl / "depth").mkdir()
    rows = [r.split(",") for r in lines[1:21]]
    for r in rows:
        shutil.copy(REAL_TUM / r[3], sl / r[3])
        shutil.copy(REAL_TUM / r[4], sl / r[4])
    (sl / "frames.csv").write_text("\n".join(lines[:21]) + "\n")
    shutil.copy(REAL_TUM / "intrinsics.yaml", sl / "intrinsics.yaml")
    from_folders([sl], tmp_path / "ds", (120, 160), progress=False)
    s, arr = _dataset(tmp_path / "ds")
    assert s.frames == 20 and arr["rgb"].shape == (20, 120, 160, 3)
    for i in (0, 7, 19):
        np.testing.assert_array_equal(arr["rgb"][i], np.array(Image.open(sl / rows[i][3]).convert("RGB")))
        raw = np.array(Image.open(sl / rows[i][4]))
        np.testing.assert_array_equal(np.isnan(arr["depth"][i]), raw == 0)
        np.testing.assert_array_equal(arr["depth"][i][raw > 0], raw[raw > 0].astype(np.float32) / 1000)
    assert arr["stamps_ns"].tolist() == [_ns(r[1]) for r in rows]
    np.testing.assert_allclose(s.K, [[129.325, 0, 79.275], [0, 129.125, 63.45], [0, 0, 1]])
    assert len(s.segments) == 1  # the single-frame drops of the source are not gaps (2 x period < 2.5 x)
    # the same slice in the native TUM layout (depth 5000/m, rgb.txt/depth.txt) gives the same dataset
    tum = tmp_path / "rgbd_dataset_freiburg1_xyz"
    raws = [np.array(Image.open(sl / r[4])) for r in rows]
    write_tum(tum, np.stack([np.array(Image.open(sl / r[3]).convert("RGB")) for r in rows]),
              np.stack([(x.astype(np.uint32) * 5).astype(np.uint16) for x in raws]),
              [r[1] for r in rows], [r[2] for r in rows], intr=False)
    shutil.copy(REAL_TUM / "intrinsics.yaml", tum / "intrinsics.yaml")  # fx.. of the 160x120 images
    (tum / "intrinsics.yaml").write_text((tum / "intrinsics.yaml").read_text().replace(
        "depth_unit: mm", "depth_unit: tum").replace("depth_scale_to_metres: 0.001", ""))
    from_folders([tum], tmp_path / "ds2", (120, 160), progress=False)
    s2, arr2 = _dataset(tmp_path / "ds2")
    for k in ("rgb", "depth", "stamps_ns"):
        np.testing.assert_array_equal(arr2[k], arr[k])
    assert s2.K == s.K


def test_cli_from_folder_and_to_bag(tmp_path):
    rgb, mm = _images(4)
    cs = _stamps(4)
    write_real_rgbd(tmp_path / "seq", rgb, mm, cs, cs)
    r = CliRunner().invoke(cli, ["data", "from-folder", str(tmp_path / "seq"), "--out", str(tmp_path / "ds"),
                                 "--size", "8", "8", "--val-tail", "0.25"])
    assert r.exit_code == 0, r.output
    assert "1 sequences" in r.output and "seq: 4 frames" in r.output
    assert RGBDDatasetIndex(tmp_path / "ds").sequences[0].val_start == 3
    r = CliRunner().invoke(cli, ["data", "to-bag", str(tmp_path / "seq"), "--out", str(tmp_path / "bag"),
                                 "--storage", "sqlite3"])
    assert r.exit_code == 0, r.output and "wrote 4 frames" in r.output
    r = CliRunner().invoke(cli, ["data", "from-bag", str(tmp_path / "bag"), "--out", str(tmp_path / "ds3"),
                                 "--size", "8", "8"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["data", "from-folder", str(tmp_path / "nothing_here")])
    assert r.exit_code != 0
    for cmd in ("from-folder", "to-bag", "from-bag", "from-sim", "from-cityscapes", "info"):
        assert "Usage" in CliRunner().invoke(cli, ["data", cmd, "--help"]).output


# ----------------------------------------------------------------------------------------------------
# bad input: clear errors naming file and line


def _real(tmp_path, n=4, **kw):
    rgb, mm = _images(n)
    cs = _stamps(n)
    return write_real_rgbd(tmp_path / "seq", rgb, mm, cs, kw.pop("ds", cs), **kw)


def test_missing_association(tmp_path):
    p = _real(tmp_path)
    lines = (p / "frames.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ","
    (p / "frames.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FolderError, match=r"frames.csv:3: missing association"):
        read_folder(p)


def test_association_beyond_slop(tmp_path):
    cs = _stamps(4)
    ds = list(cs)
    ds[1] = f"{float(cs[1]) + 0.03:.6f}"
    p = _real(tmp_path, ds=ds)
    with pytest.raises(FolderError, match=r"frames.csv:3: colour and depth stamps differ by 30.0 ms"):
        read_folder(p)


def test_count_mismatch(tmp_path):
    p = _real(tmp_path)
    (p / "depth" / "000003.png").unlink()
    with pytest.raises(FolderError, match=r"count mismatch: rgb/ has 4 PNG files, depth/ has 3"):
        read_folder(p)


def test_unknown_depth_scale(tmp_path):
    rgb, mm = _images(2)
    cs = _stamps(2)
    intr = f"fx: {FX}\nfy: {FY}\ncx: {CX}\ncy: {CY}\nwidth: {W}\nheight: {H}\ndepth_unit: furlong\n"
    p = write_real_rgbd(tmp_path / "a", rgb, mm, cs, cs, intr=intr)
    with pytest.raises(FolderError, match=r"intrinsics.yaml:7: unknown depth scale: depth_unit 'furlong'"):
        read_folder(p)
    q = write_real_rgbd(tmp_path / "b", rgb, mm, cs, cs, intr=f"fx: {FX}\nfy: {FY}\ncx: {CX}\ncy: {CY}\n")
    with pytest.raises(FolderError, match=r"unknown depth scale"):
        read_folder(q)
    assert read_folder(q, depth_units_per_metre=1000).units_per_metre == 1000


def test_non_monotonic_stamps(tmp_path):
    cs = _stamps(4)
    cs[2], cs[3] = cs[3], cs[2]
    rgb, mm = _images(4)
    p = write_real_rgbd(tmp_path / "r", rgb, mm, cs, cs)
    with pytest.raises(FolderError, match=r"frames.csv:5: non-monotonic stamps"):
        read_folder(p)
    t = write_tum(tmp_path / "t", rgb, mm, cs, _stamps(4))
    with pytest.raises(FolderError, match=r"rgb.txt:7: non-monotonic stamps"):
        read_folder(t)


def test_tum_errors(tmp_path):
    rgb, mm = _images(3)
    t = write_tum(tmp_path / "t", rgb, mm, _stamps(3), _stamps(3, t0=1305031200.0))
    with pytest.raises(FolderError, match=r"missing association: no colour entry of rgb.txt"):
        read_folder(t)
    u = write_tum(tmp_path / "u", rgb, mm, _stamps(3), _stamps(3))
    (u / "depth.txt").write_text((u / "depth.txt").read_text() + "12345.0\n")
    with pytest.raises(FolderError, match=r"depth.txt:7: expected 'timestamp filename'"):
        read_folder(u)
    v = write_tum(tmp_path / "v", rgb, mm, _stamps(3), _stamps(3))
    (v / "rgb.txt").write_text((v / "rgb.txt").read_text() + "1305031300.0 rgb/missing.png\n")
    with pytest.raises(FolderError, match=r"rgb.txt:7: file .*missing.png does not exist"):
        read_folder(v)
    with pytest.raises(FolderError, match="unknown layout"):
        read_folder(tmp_path)
