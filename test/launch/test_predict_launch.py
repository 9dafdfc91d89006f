"""``launch/predict.launch.py`` run by ``launch_testing``: two cameras, one node per camera.

Two instances of the installed launch file in namespaces ``front`` and ``rear``, each fed by a bag player
that replays one of the demo bags onto that camera's topics (``/front/color/image_raw``, ...). The
launch arguments remap the node's inputs to those topics and override the params file
(``test/launch/params.yaml``, whose checkpoint does not exist: a node that predicts proves the
``checkpoint`` argument won). Checked while running: both nodes predict colour and depth, each from its own
camera (the prediction stamps lie in that camera's bag), the parameters hold the YAML and the overriding
values, the nodes subscribe to the remapped topics only. Checked after launch_testing's shutdown, which
sends SIGINT to every process: all exit with code 0 and without a traceback.

Runs with the ROS 2 launch tools (``make test-launch``, ``.ci/run``; ``colcon test`` on a ROS install).
"""
from __future__ import annotations

import os
import time
import unittest
from pathlib import Path

import pytest
import yaml

pytest.importorskip(
    "launch_testing", reason="launch_testing is not installed: the launch tests run in the ROS 2 tool "
                             "environment (make test-launch; .ci/run does it after make test)")
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import GroupAction, IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler  # noqa: E402
from launch.event_handler import EventHandler  # noqa: E402
from launch.events.process import SignalProcess  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from launch import LaunchDescription  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARE = Path(get_package_share_directory("syncvp_ros"))
PARAMS = HERE / "params.yaml"
S = 1_000_000_000
# camera namespace -> demo bag it sees; the node in "front" also gets a backend override.
CAMERAS = {"front": "sim_street", "rear": "tum_fr1_xyz"}
OVERRIDES = {"front": {"checkpoint": "random:tiny", "backend": "auto"}, "rear": {"checkpoint": "random:tiny"}}
INPUTS = {"color_topic": "color/image_raw", "depth_topic": "aligned_depth_to_color/image_raw",
          "color_info_topic": "color/camera_info", "depth_info_topic": "aligned_depth_to_color/camera_info"}
BAG_TOPICS = {"color_topic": "/camera/color/image_raw",
              "depth_topic": "/camera/aligned_depth_to_color/image_raw",
              "color_info_topic": "/camera/color/camera_info",
              "depth_info_topic": "/camera/aligned_depth_to_color/camera_info"}
HORIZON = 2  # params.yaml
TIMEOUT_S = float(os.environ.get("SYNCVP_LAUNCH_TEST_TIMEOUT", "240"))  # start-up imports torch on 2 busy cores


def camera(ns: str, bag: str) -> GroupAction:
    """The launch file for one camera, plus a bag player publishing that camera's topics.

    Scoped, so one camera's launch arguments do not leak into the other's include."""
    arguments = {"namespace": ns, "params_file": str(PARAMS), **OVERRIDES[ns],
                 **{name: f"/{ns}/{topic}" for name, topic in INPUTS.items()}}
    predictor = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SHARE / "launch" / "predict.launch.py")),
        launch_arguments=arguments.items())
    player = Node(package="syncvp_ros", executable="bag_player", name="bag_player", namespace=ns,
                  arguments=[str(SHARE / "data" / "demo" / bag), "--loop"],
                  remappings=[(BAG_TOPICS[name], f"/{ns}/{topic}") for name, topic in INPUTS.items()],
                  output="screen")
    return GroupAction([predictor, player], scoped=True)


# Signals launch sent to the processes: SIGINT at shutdown, SIGTERM only when one outlived sigterm_timeout.
SIGNALS: list[str] = []


def record_signals() -> RegisterEventHandler:
    return RegisterEventHandler(EventHandler(
        matcher=lambda event: isinstance(event, SignalProcess),
        entities=[OpaqueFunction(function=lambda context: SIGNALS.append(context.locals.event.signal_name))]))


@pytest.mark.launch_test
def generate_test_description():
    return LaunchDescription([record_signals(), *(camera(ns, bag) for ns, bag in CAMERAS.items()),
                              launch_testing.actions.ReadyToTest()])


def bag_time_range(bag: str) -> tuple[int, int]:
    info = yaml.safe_load((SHARE / "data" / "demo" / bag / "metadata.yaml").read_text())
    info = info["rosbag2_bagfile_information"]
    start = info["starting_time"]["nanoseconds_since_epoch"]
    return start, start + info["duration"]["nanoseconds"]


class TestTwoCameras(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        cls.ctx = Context()
        rclpy.init(context=cls.ctx)
        cls.node = rclpy.create_node("launch_test_observer", context=cls.ctx)
        cls.executor = SingleThreadedExecutor(context=cls.ctx)
        cls.executor.add_node(cls.node)
        cls.got: dict[tuple[str, str], list] = {}
        # Subscribing is also what makes the (lazy) nodes predict.
        for ns in CAMERAS:
            for kind in ("color", "depth"):
                box = cls.got.setdefault((ns, kind), [])
                cls.node.create_subscription(Image, f"/{ns}/syncvp/pred/h{HORIZON}/{kind}/image", box.append, 10)

    @classmethod
    def tearDownClass(cls):
        import rclpy

        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.try_shutdown(context=cls.ctx)

    def spin_until(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        return done()

    def parameters(self, node: str, names: list[str]) -> dict:
        """The node's current values, through its get_parameters service (what ``ros2 param get`` uses)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self.node.create_client(GetParameters, f"{node}/get_parameters")
        try:
            self.assertTrue(client.wait_for_service(timeout_sec=30), f"{node}/get_parameters not available")
            future = client.call_async(GetParameters.Request(names=names))
            self.assertTrue(self.spin_until(future.done, 30), f"{node}/get_parameters did not answer")
            return dict(zip(names, (parameter_value_to_python(v) for v in future.result().values)))
        finally:
            self.node.destroy_client(client)

    def test_both_cameras_predict_colour_and_depth_from_their_own_bag(self, proc_output):
        arrived = self.spin_until(lambda: all(self.got.values()), TIMEOUT_S)
        self.assertTrue(arrived, "no prediction on: " + ", ".join(
            f"/{ns}/syncvp/pred/h{HORIZON}/{kind}" for (ns, kind), box in self.got.items() if not box))
        for (ns, kind), box in self.got.items():
            msg = box[0]
            self.assertEqual((msg.height, msg.width), (120, 160), (ns, kind))  # the demo bags' sensor size
            self.assertEqual(msg.encoding, "rgb8" if kind == "color" else "32FC1")
            self.assertEqual(msg.header.frame_id, "camera_color_optical_frame")
            # Predicted stamps lie just after a context frame of this camera's bag, so the remappings did
            # not cross the cameras (the two bags are years apart).
            start, end = bag_time_range(CAMERAS[ns])
            stamp = msg.header.stamp.sec * S + msg.header.stamp.nanosec
            self.assertTrue(start < stamp <= end + S, f"/{ns} {kind} stamp {stamp} not in {CAMERAS[ns]}")

    def test_launch_arguments_override_the_params_file(self):
        names = ["checkpoint", "backend", "steps", "horizon", "torch_threads", "color_topic"]
        file_values = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
        for ns in CAMERAS:
            values = self.parameters(f"/{ns}/syncvp", names)
            expected = {**file_values, **OVERRIDES[ns]}
            for name in names[:-1]:
                self.assertEqual(values[name], expected[name], f"/{ns}/syncvp {name}")
            # The topic arguments are remappings: the parameter keeps the params-file/table default.
            self.assertEqual(values["color_topic"], BAG_TOPICS["color_topic"])

    def test_nodes_subscribe_to_their_remapped_camera_topics_only(self):
        for ns in CAMERAS:
            def subscribed(ns=ns):
                return {t for t, _ in self.node.get_subscriber_names_and_types_by_node("syncvp", f"/{ns}")}

            expected = {f"/{ns}/{topic}" for topic in INPUTS.values()}
            self.assertTrue(self.spin_until(lambda ns=ns, e=expected: e <= subscribed(ns), 30),
                            f"/{ns}/syncvp subscribes to {sorted(subscribed())}")
            self.assertFalse({t for t in subscribed() if t.startswith("/camera/")},
                             "a node still listens on the default camera topics")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_every_process_exits_cleanly_on_sigint(self, proc_info, proc_output):
        # launch_testing ends the launch as ros2 launch does on Ctrl-C: SIGINT to each process, SIGTERM
        # after sigterm_timeout. The node exits with 0 on SIGTERM as well, so the code alone would not show
        # that SIGINT did it: the signals launch sent are checked too.
        launch_testing.asserts.assertExitCodes(proc_info)
        names = proc_info.process_names()
        self.assertEqual(sum(n.startswith("predictor_node") for n in names), 2, names)
        self.assertEqual(sum(n.startswith("bag_player") for n in names), 2, names)
        self.assertEqual(sorted(SIGNALS), ["SIGINT"] * 4, "launch had to escalate beyond SIGINT")
        for output in proc_output:
            self.assertNotIn("Traceback", output.text.decode(errors="replace"), output.process_name)
