"""The node as users start it: ``python -m syncvp_ros.predictor_node --ros-args ...`` in its own process."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from syncvp_ros.testing import camera_info_msg, color_msg, depth_msg, ros_env, synthetic_depth, synthetic_rgb  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000_000


def test_subprocess_node_answers_on_its_topics_and_exits_cleanly_on_sigint():
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    domain = ros_env()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "syncvp_ros.predictor_node", "--ros-args",
           "--params-file", str(ROOT / "config" / "predict.yaml"),
           "-p", "checkpoint:=random:tiny", "-p", "steps:=2", "-p", "horizon:=2", "-r", "__ns:=/cam0"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("process_test_driver", context=ctx)
    got: list = []
    node.create_subscription(Image, "/cam0/syncvp/pred/h2/depth/image", got.append, 10)
    pub_c = node.create_publisher(Image, "/camera/color/image_raw", qos_profile_sensor_data)
    pub_d = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", qos_profile_sensor_data)
    pub_i = node.create_publisher(CameraInfo, "/camera/color/camera_info", qos_profile_sensor_data)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        deadline = time.monotonic() + 60  # start-up includes importing torch and building the model
        t = 0
        while not got and time.monotonic() < deadline and proc.poll() is None:
            stamp = S + t * S // 10
            pub_i.publish(camera_info_msg(48, 64, stamp))
            pub_c.publish(color_msg(synthetic_rgb(48, 64, t), stamp))
            pub_d.publish(depth_msg(synthetic_depth(48, 64, t), stamp))
            t += 1
            ex.spin_once(timeout_sec=0.1)
        assert got, "no prediction from the node process:\n" + "".join(output[-40:])
        assert got[0].encoding == "32FC1" and (got[0].height, got[0].width) == (48, 64)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        reader.join(timeout=5)
        log = "".join(output)
        assert rc == 0, log[-3000:]
        assert "Traceback" not in log and "failed" not in log, log[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_subprocess_node_rejects_a_bad_start_up_parameter_with_its_name():
    ros_env()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "syncvp_ros.predictor_node", "--ros-args", "-p", "backend:=foo"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "backend" in out.stderr and "one of auto, torch" in out.stderr and "Traceback" not in out.stderr


def _node_cmd(*ros_args: str) -> tuple[list[str], dict]:
    ros_env()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return [sys.executable, "-m", "syncvp_ros.predictor_node", "--ros-args", *ros_args], env


@pytest.mark.parametrize("content", [None, "syncvp: [unclosed\n"])
def test_missing_or_invalid_params_file_is_one_line_and_exit_2(tmp_path, content):
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content)
    cmd, env = _node_cmd("--params-file", str(path))
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "params file" in lines[0] and str(path) in lines[0], lines
    assert "Traceback" not in out.stderr


def _start(cmd, env):
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    cv = threading.Condition()

    def read():
        for line in proc.stdout:
            with cv:
                lines.append(line)
                cv.notify_all()

    threading.Thread(target=read, daemon=True).start()

    def wait_for(text, timeout=90.0):
        with cv:
            return cv.wait_for(lambda: any(text in ln for ln in lines) or proc.poll() is not None, timeout) and \
                any(text in ln for ln in lines)

    return proc, lines, wait_for


def test_unknown_parameter_names_warn_with_the_closest_known_name():
    cmd, env = _node_cmd("-p", "autostart:=false", "-p", "stepz:=3", "-p", "no_such_param:=1")
    proc, lines, wait_for = _start(cmd, env)
    try:
        assert wait_for("waiting for lifecycle"), "".join(lines)
        log = "".join(lines)
        assert "unknown parameter 'stepz'" in log and "did you mean 'steps'?" in log, log
        assert "unknown parameter 'no_such_param'" in log, log
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_warm_up_exits_within_a_second_without_errors(sig):
    # 20 warm-up runs take seconds; a signal must not wait for them (issue 13.3).
    cmd, env = _node_cmd("-p", "checkpoint:=random:tiny", "-p", "warmup:=20", "-p", "torch_threads:=1")
    proc, lines, wait_for = _start(cmd, env)
    try:
        assert wait_for("warm-up: 20 inference(s)"), "".join(lines)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
        took = time.monotonic() - t0
        time.sleep(0.2)
        log = "".join(lines)
        assert rc == 0, log
        assert not any(s in log for s in ("warm-up done", "Failed", "autostart did not", "Traceback", "ERROR")), log
        assert took < 1.0, f"exit took {took:.2f} s"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
