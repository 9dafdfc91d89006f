"""Overhead of the ROS node over a direct Predictor call, and image conversion throughput.

    python bench/node_overhead.py [--size 640x480] [--steps 0] [--horizon 0] [--runs 5]

1. Conversion throughput at the given size: sensor_msgs/Image <-> numpy through syncvp_ros.ros_io (i.e.
   syncvp_core.data.encodings), for rgb8, 16UC1 and 32FC1, plus rclpy serialisation of one colour image.
2. End-to-end latency: the node runs as users run it (``python -m syncvp_ros.predictor_node`` in its own
   process, random-init ``tiny`` model). For each run the benchmark publishes one colour + depth +
   camera_info frame that completes a context window and measures the time from just before publishing
   it until the node's last output of that prediction (every horizon step: colour, depth, camera_info)
   has been received. Runs are sequential (no queueing, nothing dropped). The baseline is
   ``Predictor.predict`` on the same context frames in this process, same steps and horizon, while the
   node is idle. ratio = median(node end-to-end) / median(direct predict); target <= 1.10 at tiny.
   Both processes use the large-data Fast DDS profile of syncvp_ros.dds_profile (``--dds-defaults`` to
   see the defaults, where bursts of 640x480 images between processes take seconds). Inputs are
   published reliable: this measures overhead, not loss.

CPU timings on a shared machine are noisy: the medians are what to compare, on the same machine, in
the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

S = 1_000_000_000
INPUT_QOS = "RELIABLE"


def _ms(values: list[float]) -> str:
    med, lo, hi = statistics.median(values) * 1e3, min(values) * 1e3, max(values) * 1e3
    return f"median {med:8.2f} ms (min {lo:.2f}, max {hi:.2f})"


def conversion_throughput(h: int, w: int, n: int = 100) -> None:
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from syncvp_ros import ros_io
    from syncvp_ros.testing import color_msg, depth_msg, synthetic_depth, synthetic_rgb

    rgb, depth = synthetic_rgb(h, w, 0), synthetic_depth(h, w, 0)
    msgs = {"rgb8": color_msg(rgb, S), "16UC1": depth_msg(depth, S, encoding="16UC1"),
            "32FC1": depth_msg(depth, S, encoding="32FC1")}
    header = Header(frame_id="cam")
    cases = {
        "decode rgb8 -> uint8 RGB": lambda: ros_io.color_from_msg(msgs["rgb8"]),
        "decode 16UC1 mm -> float32 m": lambda: ros_io.depth_from_msg(msgs["16UC1"]),
        "decode 32FC1 m -> float32 m": lambda: ros_io.depth_from_msg(msgs["32FC1"]),
        "encode RGB -> rgb8 Image": lambda: ros_io.color_msg(rgb, header),
        "encode depth -> 32FC1 Image": lambda: ros_io.depth_msg(depth, header, "32FC1"),
        "encode depth -> 16UC1 Image": lambda: ros_io.depth_msg(depth, header, "16UC1"),
        "rclpy serialize rgb8 Image": lambda: serialize_message(msgs["rgb8"]),
    }
    print(f"\n== image conversion at {w}x{h} ({n} runs each) ==")
    for name, fn in cases.items():
        fn()
        t = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
        med = statistics.median(t)
        print(f"  {name:32s} {med * 1e3:7.3f} ms  ({1 / med:8.0f} frames/s)")


def use_dds_profile(enabled: bool = True) -> None:
    """The large-data Fast DDS profile (syncvp_ros/dds_profile.py) for this process and the node it starts;
    must be set before this process creates its first DDS participant."""
    if not enabled:
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        return
    import tempfile

    from syncvp_ros.dds_profile import PROFILE

    path = Path(tempfile.mkdtemp()) / "syncvp_fastdds.xml"
    path.write_text(PROFILE)
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)


def start_node(ns: str, steps: int, horizon: int) -> tuple[subprocess.Popen, list[str]]:
    """The node as users run it (``python -m``), random-init tiny on CPU with this process's torch thread
    count; returns the process and the list its output lines are collected into."""
    import torch

    cmd = [sys.executable, "-m", "syncvp_ros.predictor_node", "--ros-args", "-r", f"__ns:={ns}",
           "-p", "checkpoint:=random:tiny", "-p", f"steps:={steps}", "-p", f"horizon:={horizon}",
           "-p", "warmup:=2", "-p", "dropout_timeout:=60.0", "-p", "device:=cpu",
           "-p", f"torch_threads:={torch.get_num_threads()}", "-p", f"input_qos:={INPUT_QOS}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True).start()
    return proc, log


def stop_node(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


class Driver:
    """Publishes frames into the node process and times its outputs."""

    def __init__(self, domain: int, ns: str, horizon: int):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("overhead_driver", context=self.ctx)
        self.lock = threading.Condition()
        self.arrivals: dict[int, list[float]] = {}  # output stamp -> receive times
        self.latency_ms: list[float] = []
        self.statuses: list[dict] = []
        self.expected = 3 * horizon
        base = f"{ns}/syncvp/pred"
        for k in range(1, horizon + 1):
            for t, suffix in ((Image, "color/image"), (Image, "depth/image"), (CameraInfo, "camera_info")):
                self.node.create_subscription(t, f"{base}/h{k}/{suffix}", self._on_output, 10)
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(String, f"{ns}/syncvp/status", self._on_status, latched)
        # Reliable inputs: a best-effort 640x480 image is split into many UDP fragments and one lost fragment
        # loses the frame; this benchmark measures overhead, not loss (see the module docstring).
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_c = self.node.create_publisher(Image, "/camera/color/image_raw", qos)
        self.pub_d = self.node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", qos)
        self.pub_i = self.node.create_publisher(CameraInfo, "/camera/color/camera_info", qos)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.thread = threading.Thread(target=self.ex.spin, daemon=True)
        self.thread.start()

    def _on_output(self, msg) -> None:
        now = time.perf_counter()
        stamp = msg.header.stamp.sec * S + msg.header.stamp.nanosec
        with self.lock:
            self.arrivals.setdefault(stamp, []).append(now)
            self.lock.notify_all()

    def _on_status(self, msg) -> None:
        s = json.loads(msg.data)
        if s.get("event") == "prediction":
            self.latency_ms.append(s["latency_ms"])
            self.statuses.append(s)

    def publish(self, rgb_msg, depth_msg, info_msg) -> float:
        with self.lock:
            self.arrivals.clear()  # consecutive predictions share output stamps: count this one only
        t0 = time.perf_counter()
        self.pub_i.publish(info_msg)
        self.pub_c.publish(rgb_msg)
        self.pub_d.publish(depth_msg)
        return t0

    def wait_outputs(self, stamps: list[int], timeout: float) -> float | None:
        """Receive time of the last output of a prediction whose outputs carry ``stamps``."""
        end = time.monotonic() + timeout
        with self.lock:
            while sum(len(self.arrivals.get(s, [])) for s in stamps) < self.expected:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(min(left, 0.05))
            return max(t for s in stamps for t in self.arrivals[s])

    def close(self) -> None:
        import rclpy

        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def end_to_end(h: int, w: int, steps: int, horizon: int, runs: int, dds_profile: bool) -> None:
    import torch

    from syncvp_core.predictor import Predictor
    from syncvp_ros.testing import camera_info_msg, color_msg, depth_msg, ros_env, synthetic_depth, synthetic_rgb

    pred = Predictor.from_config("tiny", seed=0)
    horizon = horizon or pred.chunk_frames
    steps = steps or pred.config.sampler.steps
    dt = int(S / pred.frame_rate_hz)
    domain = ros_env()
    use_dds_profile(dds_profile)
    ns = "/bench"
    proc, log = start_node(ns, steps, horizon)
    drv = Driver(domain, ns, horizon)
    frames = [(synthetic_rgb(h, w, t), synthetic_depth(h, w, t)) for t in range(runs + pred.context_frames + 2)]
    msgs = [(color_msg(r, S + t * dt), depth_msg(d, S + t * dt, encoding="16UC1"), camera_info_msg(h, w, S + t * dt))
            for t, (r, d) in enumerate(frames)]
    e2e: list[float] = []
    try:
        # Wait until the node is up and discovery matched every output with our subscriptions.
        deadline = time.monotonic() + 120
        while drv.node.count_publishers(f"{ns}/syncvp/pred/h{horizon}/camera_info") == 0 or \
                drv.node.count_subscribers("/camera/aligned_depth_to_color/image_raw") == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("node did not come up:\n" + "".join(log[-30:]))
            time.sleep(0.1)
        time.sleep(1.0)
        # Fill the context (frames before the first timed one), waiting for any prediction they trigger.
        t = 0
        for t in range(pred.context_frames - 1):
            drv.publish(*msgs[t])
            time.sleep(0.2)
        first = True
        for t in range(pred.context_frames - 1, pred.context_frames - 1 + runs + 1):
            stamps = [S + t * dt + k * dt for k in range(1, horizon + 1)]
            t0 = drv.publish(*msgs[t])
            t1 = drv.wait_outputs(stamps, timeout=120)
            if t1 is None:
                raise RuntimeError(f"no complete prediction for frame {t}:\n" + "".join(log[-30:]))
            if not first:  # the first timed run also pays for discovery of late subscriptions
                e2e.append(t1 - t0)
            if os.environ.get("SYNCVP_BENCH_VERBOSE"):
                with drv.lock:
                    firsts = sorted(min(v) for v in drv.arrivals.values())
                print(f"  frame {t}: first output after {(firsts[0] - t0) * 1e3:.1f} ms, last after "
                      f"{(t1 - t0) * 1e3:.1f} ms; node status {drv.statuses[-1] if drv.statuses else None}")
            first = False
            time.sleep(0.2)
    finally:
        drv.close()
        stop_node(proc)

    direct: list[float] = []
    for i in range(runs + 1):
        t = pred.context_frames - 1 + i
        rgb = np.stack([frames[j][0] for j in range(t - pred.context_frames + 1, t + 1)])
        depth = np.stack([frames[j][1] for j in range(t - pred.context_frames + 1, t + 1)])
        # 16UC1 round trip as the node sees it (millimetre quantisation)
        depth = np.round(depth * 1000) / 1000
        t0 = time.perf_counter()
        pred.predict(rgb, depth.astype(np.float32), horizon=horizon, steps=steps, seed=0)
        if i:
            direct.append(time.perf_counter() - t0)

    print(f"\n== end-to-end at {w}x{h}: tiny (random init), {steps} DDIM steps, horizon {horizon}, "
          f"{runs} runs, torch threads {torch.get_num_threads()}, Fast DDS "
          f"{'large-data profile' if dds_profile else 'defaults'} ==")
    print(f"  direct Predictor.predict           {_ms(direct)}")
    print(f"  node: inference inside the node    median {statistics.median(drv.latency_ms[-runs:]):8.2f} ms")
    print(f"  node: publish -> last output recvd {_ms(e2e)}")
    ratio = statistics.median(e2e) / statistics.median(direct)
    print(f"  overhead ratio (node / direct)     {ratio:.3f}  (target <= 1.10) -> "
          f"{'OK' if ratio <= 1.10 else 'ABOVE TARGET'}")
    print(f"  overhead per prediction            {(statistics.median(e2e) - statistics.median(direct)) * 1e3:.1f} ms "
          f"({3 * horizon} messages out)")
    outside = statistics.median(e2e) * 1e3 - statistics.median(drv.latency_ms[-runs:])
    print(f"  node time outside inference        {outside:.1f} ms (input, queue, encode, publish, delivery; "
          f"less sensitive to CPU noise than the ratio)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="640x480", help="input WxH (default 640x480)")
    ap.add_argument("--steps", type=int, default=0, help="DDIM steps (0 = the model's default)")
    ap.add_argument("--horizon", type=int, default=0, help="predicted frames (0 = the model's chunk)")
    ap.add_argument("--runs", type=int, default=5, help="timed predictions (default 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the node and the direct call (default 1: fair and stable on a shared "
                         "machine; 0 = torch default)")
    ap.add_argument("--dds-defaults", action="store_true",
                    help="run the node with Fast DDS defaults instead of syncvp_ros.dds_profile (large images "
                         "then take seconds between processes)")
    ap.add_argument("--skip-e2e", action="store_true", help="conversion throughput only")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # the node gets the same number (torch_threads parameter)
    conversion_throughput(h, w)
    if not args.skip_e2e:
        try:
            end_to_end(h, w, args.steps, args.horizon, args.runs, dds_profile=not args.dds_defaults)
        except RuntimeError as e:
            print(f"\nend-to-end run failed: {e}")
            if args.dds_defaults:
                print("(with Fast DDS defaults, full-size images between processes can be delayed by seconds or "
                      "not delivered at all: see syncvp_ros/dds_profile.py)")
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
