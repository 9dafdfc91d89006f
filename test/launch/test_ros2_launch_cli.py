"""``ros2 launch syncvp_ros predict.launch.py`` typed as a user would, then Ctrl-C.

The launch_testing test (test_predict_launch.py) drives the launch file from inside the test process; this
one goes through the ``ros2`` command line: launch arguments parsed from ``name:=value``, parameters read
back with ``ros2 param get``, and a terminal's Ctrl-C, which sends SIGINT to the whole process group (the
node gets it twice: from the terminal and forwarded by launch).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PARAMS = HERE / "params.yaml"
NODE = "/cli/probe"
START_TIMEOUT_S = float(os.environ.get("SYNCVP_LAUNCH_TEST_TIMEOUT", "240"))


@pytest.fixture
def ros2_cli(request) -> None:
    """Skip, naming the test and the reason in the summary, unless ``ros2 launch`` finds the package."""
    where = f"{request.node.name}: needs the ROS 2 tool environment (make test-launch; .ci/run runs it): "
    if shutil.which("ros2") is None:
        pytest.skip(where + "no ros2 command on PATH")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("syncvp_ros")
    except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        pytest.skip(where + "syncvp_ros is not installed in an ament prefix")


def param_get(name: str, env: dict, launch: subprocess.Popen, timeout_s: float = 30.0) -> str:
    """``ros2 param get``; retried, because without the daemon discovery can miss a node on a busy machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(["ros2", "param", "get", "--no-daemon", NODE, name], env=env, capture_output=True,
                             text=True, timeout=60)
        if out.returncode == 0 or time.monotonic() > deadline or launch.poll() is not None:
            return out.stdout.strip() if out.returncode == 0 else out.stderr.strip()
        time.sleep(1.0)


def test_ros2_launch_applies_overrides_and_ctrl_c_ends_everything_cleanly(ros2_cli):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = ["ros2", "launch", "syncvp_ros", "predict.launch.py", "namespace:=cli", "node_name:=probe",
           f"params_file:={PARAMS}", "checkpoint:=random:tiny", "use_sim_time:=true", "log_level:=warn"]
    # A session of its own = the process group a terminal would signal on Ctrl-C.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        checkpoint = param_get("checkpoint", env, proc, timeout_s=START_TIMEOUT_S)  # answers once the node is up
        assert checkpoint == "String value is: random:tiny", "".join(output[-40:])
        assert param_get("steps", env, proc) == "Integer value is: 2"  # from the params file (table default: 0)
        assert param_get("use_sim_time", env, proc) == "Boolean value is: True"

        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: launch and node both get it
        rc = proc.wait(timeout=60)
        reader.join(timeout=5)
        log = "".join(output)
        assert rc == 0, log[-3000:]
        assert "process has finished cleanly" in log, log[-3000:]
        assert "escalating" not in log and "Traceback" not in log, log[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_every_launch_argument_is_documented(ros2_cli):
    out = subprocess.run(["ros2", "launch", "syncvp_ros", "predict.launch.py", "--show-args"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names = re.findall(r"^\s+'(\w+)':$", out.stdout, flags=re.M)
    assert {"params_file", "namespace", "color_topic", "checkpoint", "use_sim_time"} <= set(names), out.stdout
    docs = (HERE.parent.parent / "docs" / "node.md").read_text()
    assert not [n for n in names if f"`{n}`" not in docs], "launch arguments missing in docs/node.md"
