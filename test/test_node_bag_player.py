"""syncvp_ros.bag_player: original timing, rate, /clock, loop; and a looping bag replayed into the node."""
import threading
import time

import pytest

pytest.importorskip("rclpy")

from syncvp_core.data.bag import write_rgbd_bag  # noqa: E402
from syncvp_core.data.frames import RGBDFrame, intrinsics_matrix  # noqa: E402
from syncvp_ros.testing import Harness, ros_env, synthetic_depth, synthetic_rgb  # noqa: E402

pytestmark = pytest.mark.ros
S = 1_000_000_000
T0 = 50 * S


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "rgbd"
    frames = [RGBDFrame(T0 + i * S // 10, synthetic_rgb(48, 64, i), synthetic_depth(48, 64, i),
                        K=intrinsics_matrix(50, 50, 31.5, 23.5)) for i in range(10)]
    write_rgbd_bag(path, frames)
    return path


def stamp(msg):
    return msg.header.stamp.sec * S + msg.header.stamp.nanosec


def test_player_keeps_timing_scaled_by_rate_and_publishes_clock(bag):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from syncvp_ros.bag_player import BagPlayer

    domain = ros_env()
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    sub_node = rclpy.create_node("listener", context=ctx)
    play_node = rclpy.create_node("bag_player", context=ctx)
    got, at, clocks = [], [], []
    sub_node.create_subscription(Image, "/camera/color/image_raw", lambda m: (got.append(m), at.append(
        time.perf_counter())), 50)
    sub_node.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec * S + m.clock.nanosec), 100)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(sub_node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        player = BagPlayer(play_node, bag, rate=2.0, clock=True, loop=True)
        deadline = time.monotonic() + 5
        while not sub_node.count_publishers("/camera/color/image_raw") or not \
                play_node.count_subscribers("/camera/color/image_raw"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopper = threading.Timer(0.9 + 0.45, player.stop)  # one pass is 0.45 s at x2: stop in the second loop
        stopper.start()
        player.play()
        time.sleep(0.2)
        stamps = [stamp(m) for m in got]
        assert stamps[:10] == [T0 + i * S // 10 for i in range(10)]
        assert player.loops >= 1 and stamps[10] == T0  # looped: stamps start over
        assert (at[9] - at[0]) == pytest.approx(0.45, abs=0.15)  # 0.9 s of bag time at x2
        assert clocks and min(clocks) >= T0 and max(clocks) <= T0 + 9 * S // 10
        assert bytes(got[0].data) == synthetic_rgb(48, 64, 0).tobytes()  # raw CDR bytes round-trip
    finally:
        ex.shutdown()
        sub_node.destroy_node()
        play_node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_looping_bag_into_the_node_with_sim_time_resets_and_keeps_predicting(bag):
    from syncvp_ros.bag_player import BagPlayer

    with Harness({"checkpoint": "random:tiny", "steps": 2, "horizon": 2, "use_sim_time": True}) as h:
        assert h.wait_for_subscribers()
        play_node = __import__("rclpy").create_node("bag_player", context=h.context)
        player = BagPlayer(play_node, bag, rate=1.0, clock=True, loop=True)
        t = threading.Thread(target=player.play, daemon=True)
        time.sleep(0.5)  # discovery
        t.start()
        try:
            totals = h.node.monitor.problems.totals
            assert h.wait_until(lambda: totals["backwards"] >= 1 and player.loops >= 2, 15)
            preds = [s for s in h.statuses() if s["event"] == "prediction"]
            assert preds and all(T0 <= p["stamp_ns"] <= T0 + S for p in preds)
            assert h.node.modes.dropouts == {"color": 0, "depth": 0}  # the sim clock jumped back: no dropout
            out = h.received["h1/color"][-1]
            assert T0 < stamp(out) <= T0 + S + S // 10
        finally:
            player.stop()
            t.join(timeout=5)
            play_node.destroy_node()


def test_player_command_line_help_and_missing_bag(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    ros_env()
    out = subprocess.run([sys.executable, "-m", "syncvp_ros.bag_player", "--help"], env=env, cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--loop" in out.stdout and "--clock" in out.stdout
    out = subprocess.run([sys.executable, "-m", "syncvp_ros.bag_player", str(tmp_path / "nope")], env=env,
                         cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no such bag" in out.stderr + out.stdout
