"""Point clouds from predicted depth (syncvp_core.pointcloud): layout, known geometry, bad intrinsics."""
import numpy as np
import pytest

from syncvp_core.pointcloud import (
    FIELDS,
    FLOAT32,
    PointCloudError,
    check_intrinsics,
    depth_to_cloud,
    read_cloud,
)

H, W = 48, 64
K = np.array([[80.0, 0, 31.5], [0, 70.0, 23.5], [0, 0, 1]])


def _plane(z=2.0):
    return np.full((H, W), z, np.float32)


def _colours():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_plane_at_two_metres_organised():
    rgb = _colours()
    c = depth_to_cloud(_plane(), K, rgb)
    assert (c.height, c.width, c.point_step, c.row_step) == (H, W, 16, 16 * W)
    assert c.is_dense and not c.is_bigendian and len(c.data) == H * W * 16
    assert [f[:3] for f in c.fields] == [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32),
                                         ("rgb", 12, FLOAT32)]
    xyz, col = read_cloud(c.data, c.height, c.width, c.point_step, c.row_step, c.fields)
    grid = xyz.reshape(H, W, 3)
    np.testing.assert_allclose(grid[..., 2], 2.0)
    # A fronto-parallel plane at 2 m: x spans (u - cx) * 2 / fx, y likewise; the optical axis hits (0, 0).
    np.testing.assert_allclose(grid[0, 0, :2], [(0 - 31.5) * 2 / 80, (0 - 23.5) * 2 / 70], rtol=1e-6)
    np.testing.assert_allclose(grid[-1, -1, :2], [(W - 1 - 31.5) * 2 / 80, (H - 1 - 23.5) * 2 / 70], rtol=1e-6)
    np.testing.assert_allclose(np.diff(grid[..., 0], axis=1), 2 / 80, rtol=1e-5)
    np.testing.assert_allclose(np.diff(grid[..., 1], axis=0), 2 / 70, rtol=1e-5)
    np.testing.assert_array_equal(col.reshape(H, W, 3), rgb)


def test_packed_rgb_bits_are_0x00rrggbb():
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0, 0] = (0x12, 0x34, 0x56)
    c = depth_to_cloud(_plane(), K, rgb)
    first = np.frombuffer(c.data[12:16], "<u4")[0]
    assert first == 0x00123456


def test_slanted_plane_points_lie_on_the_plane():
    # Depth of the plane z = 2 + 0.5 x: along a ray (rx, ry, 1), z = 2 / (1 - 0.5 rx).
    rx = (np.arange(W) - K[0, 2]) / K[0, 0]
    depth = np.broadcast_to(2.0 / (1 - 0.5 * rx), (H, W)).astype(np.float32)
    c = depth_to_cloud(depth, K)
    xyz, _ = read_cloud(c.data, c.height, c.width, c.point_step, c.row_step, c.fields)
    np.testing.assert_allclose(xyz[:, 2], 2 + 0.5 * xyz[:, 0], rtol=1e-5)


def test_invalid_depth_organised_keeps_grid_dense_drops():
    depth = _plane()
    depth[3, 5] = np.nan
    depth[10, :] = 0.0
    depth[11, 7] = np.inf
    n_bad = 1 + W + 1
    org = depth_to_cloud(depth, K)
    assert (org.height, org.width) == (H, W) and not org.is_dense
    xyz, _ = read_cloud(org.data, org.height, org.width, org.point_step, org.row_step, org.fields)
    assert int(np.isnan(xyz[:, 2]).sum()) == n_bad
    assert np.isnan(xyz.reshape(H, W, 3)[3, 5]).all()
    dense = depth_to_cloud(depth, K, organized=False)
    assert (dense.height, dense.width) == (1, H * W - n_bad) and dense.is_dense
    assert dense.row_step == 16 * dense.width
    xyz_d, rgb_d = read_cloud(dense.data, dense.height, dense.width, dense.point_step, dense.row_step,
                              dense.fields)
    assert np.isfinite(xyz_d).all()
    np.testing.assert_array_equal(xyz_d, xyz[np.isfinite(xyz[:, 2])])
    assert (rgb_d == 0).all()  # no colour given: black


def test_all_invalid_dense_cloud_is_empty():
    c = depth_to_cloud(np.full((H, W), np.nan, np.float32), K, organized=False)
    assert (c.height, c.width, c.data) == (1, 0, b"")


def test_decimation_keeps_every_dth_pixel_with_full_resolution_intrinsics():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 5, (H, W)).astype(np.float32)
    full = depth_to_cloud(depth, K, _colours())
    dec = depth_to_cloud(depth, K, _colours(), decimation=3)
    assert (dec.height, dec.width) == (len(range(0, H, 3)), len(range(0, W, 3)))
    xf, cf = read_cloud(full.data, full.height, full.width, full.point_step, full.row_step, full.fields)
    xd, cd = read_cloud(dec.data, dec.height, dec.width, dec.point_step, dec.row_step, dec.fields)
    np.testing.assert_array_equal(xd.reshape(dec.height, dec.width, 3), xf.reshape(H, W, 3)[::3, ::3])
    np.testing.assert_array_equal(cd.reshape(dec.height, dec.width, 3), cf.reshape(H, W, 3)[::3, ::3])


def test_reader_honours_row_padding_and_big_endian():
    c = depth_to_cloud(_plane(1.5), K, _colours(), decimation=4)
    rows = np.frombuffer(c.data, np.uint8).reshape(c.height, c.row_step)
    padded = np.concatenate([rows, np.full((c.height, 8), 0xAB, np.uint8)], axis=1).tobytes()
    a, ca = read_cloud(padded, c.height, c.width, c.point_step, c.row_step + 8, c.fields)
    b, cb = read_cloud(c.data, c.height, c.width, c.point_step, c.row_step, c.fields)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    swapped = np.frombuffer(c.data, ">u4").astype("<u4").tobytes()  # every 4-byte field byte-swapped
    s, cs = read_cloud(swapped, c.height, c.width, c.point_step, c.row_step, c.fields, is_bigendian=True)
    np.testing.assert_array_equal(s, b)
    np.testing.assert_array_equal(cs, cb)
    with pytest.raises(PointCloudError, match="too short"):
        read_cloud(c.data[:-1], c.height, c.width, c.point_step, c.row_step, c.fields)


@pytest.mark.parametrize("bad, what", [
    (np.zeros((3, 3)), "fx=0"),
    ([[np.nan, 0, 1], [0, 50, 1], [0, 0, 1]], "fx=nan"),
    ([[50, 0, 1], [0, -3, 1], [0, 0, 1]], "fy=-3"),
    ([[50, 0, np.inf], [0, 50, 1], [0, 0, 1]], "principal point"),
    (np.eye(2), "9 values"),
])
def test_unusable_intrinsics_are_refused_with_the_value(bad, what):
    with pytest.raises(PointCloudError, match=what.replace("(", r"\(")):
        depth_to_cloud(_plane(), bad)
    with pytest.raises(PointCloudError):
        check_intrinsics(bad)


def test_bad_shapes_and_decimation_are_refused():
    with pytest.raises(PointCloudError, match="one \\(H, W\\) frame"):
        depth_to_cloud(np.zeros((2, H, W), np.float32), K)
    with pytest.raises(PointCloudError, match="rgb must be uint8"):
        depth_to_cloud(_plane(), K, np.zeros((H, W + 1, 3), np.uint8))
    with pytest.raises(PointCloudError, match="decimation"):
        depth_to_cloud(_plane(), K, decimation=0)


def test_fields_constant_matches_dtype_offsets():
    assert [(f[0], f[1]) for f in FIELDS] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 12)]
