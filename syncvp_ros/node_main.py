"""Starting and stopping the node process: ``python -m syncvp_ros.predictor_node`` and the
``predictor_node`` executable.

Start-up errors are one line and exit code 2 (an unreadable ``--params-file``, a malformed ``--ros-args``, a
bad parameter value); unknown parameter names are warned with the closest known name. SIGINT and SIGTERM
stop the node at any point, warm-up included, with exit code 0.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
from typing import Any

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from .predictor_node import NODE_NAME, PredictorNode, WarmUpInterrupted


def _start_up_overrides(node: PredictorNode) -> list[str]:
    # rclpy keeps the -p / --params-file values for this node here; there is no public accessor.
    return list(getattr(node, "_parameter_overrides", {}))


def _sigterm_like_sigint() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, as SIGINT does, so it interrupts a warm-up in
    progress too. Installed before ``rclpy.init``: rclpy's own handler shuts the context down (waking the
    executor) and then calls this one. A second signal during the clean-up is ignored: Ctrl-C on
    ``ros2 launch`` delivers SIGINT twice (from the terminal, then forwarded by launch)."""
    fired = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _init_rclpy(args: list[str] | None) -> str | None:
    """``rclpy.init``; on failure (an unreadable --params-file, malformed --ros-args) the reason, with rcl's
    own lines on stderr held back so that the user reads one line."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            rclpy.init(args=args)
            error = None
        except RCLError as e:
            error = str(e).split(", at ")[0]  # drop rcl's source locations
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if error is None:
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
    return error


def main(args: list[str] | None = None) -> int:
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    _sigterm_like_sigint()
    error = _init_rclpy(args)
    if error is not None:
        print(f"[{NODE_NAME}] cannot start: {error}", file=sys.stderr)
        return 2
    node = None
    executor = SingleThreadedExecutor()
    try:
        try:
            node = PredictorNode()
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            # A bad value in --params-file / -p: a setup error, reported once with the parameter's name.
            rclpy.logging.get_logger(NODE_NAME).error(f"invalid parameter at start-up: {e}")
            return 2
        node.warn_unknown_parameters(_start_up_overrides(node))
        executor.add_node(node)
        if node.get_parameter("autostart").value:
            if not node.autostart() and node.context.ok():
                node.get_logger().error("autostart did not reach the active state; the node stays up: "
                                        "fix the parameters and trigger configure/activate")
        else:
            node.get_logger().info("autostart is false: waiting for lifecycle configure/activate")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException, WarmUpInterrupted):
        pass
    finally:
        if node is not None:
            print(f"[{NODE_NAME}] shutting down", flush=True)  # rosout is gone once the context is shut down
            node.stop()
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


def cli() -> None:
    """The executable: :func:`main`, then exit at once. Everything the node holds is released by then;
    the interpreter's own teardown of torch would add about a second to every shutdown."""
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
