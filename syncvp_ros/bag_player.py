"""Play a bag's topics into ROS with their original timing (``ros2 bag play`` is not installed everywhere).

    python -m syncvp_ros.bag_player BAG [--rate 1.0] [--loop] [--clock] [--qos reliable|best_effort]
                                        [--topics /a /b] [--start 0.0] [--ros-args ...]

* Reads rosbag2 directories, ``.mcap`` / ``.db3`` files and ROS 1 ``.bag`` files with ``rosbags`` (no
  rosbag2 installation). rosbag2 messages are published as the recorded CDR bytes (``publish(bytes)``),
  so nothing is decoded; ROS 1 messages are converted to CDR first.
* Timing follows the recording time of each message, scaled by ``--rate`` (2.0 = twice as fast).
* ``--clock`` publishes ``/clock`` (rosgraph_msgs/Clock) with the bag time, before every message and at
  ``--clock-hz`` in between, for nodes running with ``use_sim_time:=true``.
* ``--loop`` starts over at the end. Header stamps (and /clock) then jump back to the start of the bag,
  which is what the predictor node must survive (it resets its context and warns).
* ``--qos``: reliable (default, reaches reliable and best-effort subscribers) or best_effort.

Message types are taken from the installed ROS packages (``sensor_msgs/msg/Image`` ->
``sensor_msgs.msg.Image``); topics of types that are not installed are skipped with a warning.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

from syncvp_core.data.bag import BagError, iter_raw_messages, open_reader


def message_class(msgtype: str) -> Any:
    """``"sensor_msgs/msg/Image"`` -> the rclpy message class (ImportError/AttributeError if absent)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class BagPlayer:
    """Publishes the messages of ``path`` on ``node``; :meth:`play` blocks until done or stopped."""

    def __init__(self, node: Any, path: str | Path, rate: float = 1.0, loop: bool = False,
                 clock: bool = False, qos: str = "reliable", topics: list[str] | None = None,
                 start_s: float = 0.0, clock_hz: float = 100.0):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        if rate <= 0:
            raise ValueError(f"--rate must be > 0, got {rate}")
        if qos not in ("reliable", "best_effort"):
            raise ValueError(f"--qos must be reliable or best_effort, got {qos!r}")
        self.node, self.path, self.rate, self.loop = node, Path(path), float(rate), loop
        self.topics, self.start_ns = topics, int(start_s * 1e9)
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else float("inf")
        self.published = 0
        self.loops = 0
        self._stop = False
        rel = ReliabilityPolicy.RELIABLE if qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
        self._qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=rel)
        self._pubs: dict[str, Any] = {}
        self._skipped: set[str] = set()
        self._clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, "/clock", 10)
        reader = open_reader(self.path)
        try:
            self._connections = sorted({(c.topic, c.msgtype) for c in reader.connections})
            self.duration_s = (reader.end_time - reader.start_time) / 1e9 if reader.message_count else 0.0
        finally:
            reader.close()
        for topic, msgtype in self._connections:
            if self.topics and topic not in self.topics:
                continue
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                self._skipped.add(topic)
                node.get_logger().warning(f"{topic}: message type {msgtype} is not installed; skipped")
                continue
            self._pubs[topic] = node.create_publisher(cls, topic, self._qos)

    def stop(self) -> None:
        self._stop = True

    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock_pub is None:
            return
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self._clock_pub.publish(msg)

    def _wait_until(self, wall_target: float, bag_at: Any, bag_target: int) -> None:
        """Sleep until ``wall_target`` (perf_counter), publishing /clock on the way (never past the next
        message's time, so the clock never runs ahead of the data)."""
        while not self._stop:
            left = wall_target - time.perf_counter()
            if left <= 0:
                return
            time.sleep(min(left, self.clock_period, 0.1))
            if self._clock_pub is not None:
                self._publish_clock(min(bag_at(time.perf_counter()), bag_target))

    # Subclasses that pace themselves (e.g. lockstep evaluation) set this to False.
    paced = True

    def _publish(self, topic: str, t_ns: int, data: bytes) -> float:
        """Publish one message; returns wall seconds that should not count against the pacing."""
        self._publish_clock(t_ns)
        self._pubs[topic].publish(data)  # rclpy publishes serialized CDR bytes as they are
        return 0.0

    def play_once(self) -> int:
        """One pass over the bag; returns the number of messages published."""
        n = 0
        wall0 = bag0 = None
        for topic, _msgtype, t_ns, data in iter_raw_messages(self.path, list(self._pubs)):
            if self._stop:
                break
            if bag0 is None:
                bag0 = t_ns + self.start_ns
                wall0 = time.perf_counter()
            if t_ns < bag0:
                continue
            if self.paced:
                target = wall0 + (t_ns - bag0) / 1e9 / self.rate
                b0, w0 = bag0, wall0
                self._wait_until(target, lambda now, b0=b0, w0=w0: b0 + int((now - w0) * self.rate * 1e9), t_ns)
                if self._stop:
                    break
            wall0 += self._publish(topic, t_ns, data)
            n += 1
        self.published += n
        return n

    def play(self) -> int:
        while not self._stop:
            n = self.play_once()
            if n == 0 or not self.loop:
                break
            self.loops += 1
        return self.published


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bag_player", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", help="rosbag2 directory, .mcap/.db3 file or ROS 1 .bag")
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    ap.add_argument("--loop", action="store_true", help="start over at the end")
    ap.add_argument("--clock", action="store_true", help="publish /clock with the bag time (use_sim_time)")
    ap.add_argument("--clock-hz", type=float, default=100.0, help="/clock rate between messages (default 100)")
    ap.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable",
                    help="publisher reliability (default reliable: reaches every subscriber)")
    ap.add_argument("--topics", nargs="+", default=None, help="only these topics (default: all)")
    ap.add_argument("--start", type=float, default=0.0, help="skip this many seconds at the start")
    return ap


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.utilities import remove_ros_args

    argv = sys.argv if argv is None else argv
    args = build_parser().parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    node = rclpy.create_node("bag_player")
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, loop=args.loop, clock=args.clock, qos=args.qos,
                           topics=args.topics, start_s=args.start, clock_hz=args.clock_hz)
        node.get_logger().info(
            f"playing {args.bag} ({player.duration_s:.1f} s, {len(player._pubs)} topics) at x{args.rate}"
            + (", looping" if args.loop else "") + (", publishing /clock" if args.clock else ""))
        player.play()
        node.get_logger().info(f"done: {player.published} messages, {player.loops} loop(s)")
        return 0
    except BagError as e:
        node.get_logger().error(str(e))
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception:
        if rclpy.ok():
            raise
        return 0  # Ctrl-C: rclpy's handler shut the context down under a publish in progress
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
