"""A training pack holds exactly the frames that may train (never a held-out tail), losslessly up to float16
depth, and a config with data.pack trains from it the clips it would have trained from the sources."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from syncvp_core.training.cli import pack_data
from syncvp_core.training.config import load_train_config
from syncvp_core.training.data import DataError, Sequence
from syncvp_core.training.dist import DistInfo
from syncvp_core.training.pack import read_pack, write_pack
from syncvp_core.training.pipeline import Session
from syncvp_core.training.synthetic import smoke_overrides, write_synthetic_folder


def _seq(name: str, n: int, **kw) -> Sequence:
    rng = np.random.default_rng(len(name))
    rgb = rng.integers(0, 256, (n, 6, 8, 3), dtype=np.uint8)
    dep = (0.3 + 19 * rng.random((n, 6, 8))).astype(np.float32)
    dep[0, 0, 0] = np.nan
    return Sequence(name, rgb, dep, 10.0, "fp", source={"kind": "folder"}, **kw)


def test_pack_round_trip_keeps_trainable_frames_only(tmp_path):
    a = _seq("a", 30, reversible=True, segments=[(0, 10), (12, 30)])  # tail from split_point(30, 0.2) = 24
    b = _seq("b", 20, train_end=15)  # a data set's own validation tail
    val = _seq("v", 20, train_end=0)  # a validation sequence: nothing of it may travel
    info = write_pack([a, b, val], 0.2, (6, 8), tmp_path / "p.npz")
    assert info["sequences"] == 2 and info["frames"] == 24 + 15
    got = read_pack(tmp_path / "p.npz", (6, 8))
    assert [s.name for s in got] == ["a", "b"]
    for s, src, end in zip(got, (a, b), (24, 15)):
        assert len(s) == end and s.train_end == end
        np.testing.assert_array_equal(s.rgb, src.rgb[:end])
        np.testing.assert_array_equal(s.depth, src.depth[:end].astype(np.float16).astype(np.float32))
        assert np.nanmax(np.abs(s.depth - src.depth[:end]) / src.depth[:end]) <= 2.0 ** -11
        assert np.isnan(s.depth[0, 0, 0])
    assert got[0].reversible and not got[1].reversible
    assert got[0].segments == [(0, 10), (12, 24)]
    assert got[0].fingerprint == "fp+fp16"


def test_bad_packs_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_pack(tmp_path / "none.npz", (6, 8))
    write_pack([_seq("a", 12)], 0.2, (6, 8), tmp_path / "p.npz")
    with pytest.raises(DataError, match="packed at"):
        read_pack(tmp_path / "p.npz", (64, 64))
    raw = (tmp_path / "p.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        read_pack(tmp_path / "cut.npz", (6, 8))
    with pytest.raises(DataError, match="nothing to pack"):
        write_pack([_seq("v", 12, train_end=0)], 0.2, (6, 8), tmp_path / "q.npz")


def test_a_packed_config_trains_the_same_clips(tmp_path):
    folder = write_synthetic_folder(tmp_path / "seq", n_frames=40)
    ovr = smoke_overrides(folder, tmp_path / "run")
    out = tmp_path / "pack.npz"
    res = CliRunner().invoke(pack_data, ["--config", "smoke", "--out", str(out), *ovr, "progress=false"])
    assert res.exit_code == 0, res.output
    assert "1 sequences" in res.output and out.exists()
    src = Session(load_train_config("smoke", ovr), DistInfo())
    packed = Session(load_train_config("smoke", ovr + [f"data.pack={out}", "data.folders=[]"]), DistInfo())
    length = src.cfg.context_frames + src.cfg.chunk_frames
    a, b = src.clips(length), packed.clips(length)
    assert len(a) == len(b) > 0
    for i in (0, len(a) - 1):
        (ra, da), (rb, db) = a.frames(i), b.frames(i)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_allclose(db, da, rtol=2.0 ** -11, equal_nan=True)
    assert packed.fingerprint() != src.fingerprint()  # float16 depth: a different data object, said so
    res = CliRunner().invoke(pack_data, ["--config", "smoke", "--out", str(tmp_path / "again.npz"), *ovr,
                                         f"data.pack={out}"])
    assert res.exit_code != 0 and "already trains from a pack" in res.output
