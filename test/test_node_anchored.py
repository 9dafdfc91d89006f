"""The node with an anchored model (issue #11): the same topics, stamps and sizes as with the direct decoder,
and a depth sensor going silent still gives both modalities."""
import numpy as np
import pytest

pytest.importorskip("rclpy")
import torch  # noqa: E402

from syncvp_ros.testing import Harness  # noqa: E402

pytestmark = pytest.mark.ros
torch.set_num_threads(1)

PARAMS = {"checkpoint": "random:tiny_anchored", "steps": 2, "horizon": 2, "warmup": 1}


def test_anchored_model_publishes_both_modalities_at_sensor_size():
    with Harness(PARAMS) as h:
        assert h.wait_for_subscribers()
        h.stream(5)
        assert h.wait_until(lambda: all(h.count(f"h{k}/{w}") for k in (1, 2) for w in ("color", "depth")), 20)
        c, d = h.received["h2/color"][0], h.received["h2/depth"][0]
        assert (c.encoding, c.height, c.width) == ("rgb8", 48, 64)
        assert (d.encoding, d.height, d.width) == ("32FC1", 48, 64)
        depth = np.frombuffer(bytes(d.data), "<f4")
        assert np.isfinite(depth).any() and np.nanmin(depth) > 0


def test_draws_parameter_sets_the_sampler_rows_per_forecast_at_runtime():
    from rclpy.parameter import Parameter

    with Harness({**PARAMS, "draws": 3}) as h:
        rows = []
        denoise = h.node.predictor.backend.denoise
        h.node.predictor.backend.denoise = lambda x_r, *a: rows.append(x_r.batch) or denoise(x_r, *a)
        assert h.wait_for_subscribers()
        h.stream(4)
        assert h.wait_until(lambda: h.count("h1/color") >= 1, 20)
        assert rows and set(rows) == {3}
        assert h.node.set_parameters([Parameter("draws", value=1)])[0].successful
        assert not h.node.set_parameters([Parameter("draws", value=-1)])[0].successful  # out of range
        rows.clear()
        h.stream(4)  # a job submitted before the change may still finish with 3 rows; later ones use 1
        assert h.wait_until(lambda: 1 in rows, 20)
        assert rows[-1] == 1 and set(rows) <= {1, 3}
