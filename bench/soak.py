"""Soak: the node process for N minutes under valid input plus a fault mix, or N sensor dropout cycles.

    python bench/soak.py --minutes 30 [--faults late_depth,bad_encoding,...] [--fault-every 20]
    python bench/soak.py --dropout-cycles 100          # (also: python bench/dropout_cycles.py 100)

The node runs as users run it (``python -m syncvp_ros.predictor_node``, random-init ``tiny``, 2 DDIM steps,
horizon 2, ``torch_threads: 1``) in its own process; this process publishes colour + depth + camera_info
at ``--hz`` with wall-clock stamps and, every ``--fault-every`` frames, one fault of the mix in place of a
valid frame. Every ``--sample-s`` (30 s) it reads the node's RSS, threads and open file descriptors from
/proc and the predictions (rate, inference latency, end-to-end age) from ``~/status``, and prints a row.
At the end: RSS growth after warm-up (first sample after ``--warmup-s``) to the end, thread and fd
ranges, and the trend of the prediction rate (least-squares slope over the run, and the means of the
first and second half). Targets (issue 13): RSS growth < 2 %, no trend in rate.

Dropout cycles: colour and depth alternately go silent for ``--off-s`` (longer than the node's
``dropout_timeout``) and come back for ``--on-s``; a cycle passes when the node switched to the guidance
mode, published a prediction in it, and published a ``full`` prediction after the sensor came back.
Prints the fraction that passed.

Transport: ``--size 320x240 --depth-encoding 32FC1 --faults ""`` with and without ``--dds-profile`` shows
what Fast DDS's defaults do to large images between processes (the ``in Hz`` column: received rates from
the node's /diagnostics; ``modes``: mode switches so far).

CPU-heavy on a shared machine: ``--predict-hz`` (default 2) caps the node's predictions per second.
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

NS = "/soak"
S = 1_000_000_000
FAULTS = ("late_depth", "late_color", "future_stamp", "zero_stamp", "duplicate", "bad_encoding", "truncated",
          "huge_header", "nan_depth", "size_mismatch", "big_endian", "burst")


# ---------------------------------------------------------------------------------------------- node
def start_node(domain: int, extra: list[str], log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "syncvp_ros.predictor_node", "--ros-args",
           "-p", "checkpoint:=random:tiny", "-p", "steps:=2", "-p", "horizon:=2", "-p", "torch_threads:=1",
           "-p", "always_predict:=true", "-r", f"__ns:={NS}", *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", ROS_DOMAIN_ID=str(domain))
    log = log_path.open("w")
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split(":")[1].strip() for line in status if ":" in line}
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


# ---------------------------------------------------------------------------------------------- driver
class Driver:
    """Publishes the camera, records the node's ~/status."""

    def __init__(self, domain: int, h: int, w: int, depth_encoding: str = "16UC1"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        self.h, self.w, self.depth_encoding = h, w, depth_encoding
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("soak_driver", context=self.ctx)
        q = qos_profile_sensor_data
        self.pub = {"color": self.node.create_publisher(Image, "/camera/color/image_raw", q),
                    "depth": self.node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", q),
                    "info": self.node.create_publisher(CameraInfo, "/camera/color/camera_info", q)}
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.lock = threading.Lock()
        self.predictions: list[dict] = []  # status events "prediction", with the receive time
        self.modes: list[tuple[float, str]] = []
        self.node.create_subscription(String, f"{NS}/syncvp/status", self._on_status, latched)
        self.diag: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self.sending = {"color": True, "depth": True}
        self.t = 0
        self.faults_sent = 0

    def _spin(self) -> None:
        try:
            self.ex.spin()
        except Exception:
            pass

    def _on_status(self, msg) -> None:
        s = json.loads(msg.data)
        now = time.monotonic()
        with self.lock:
            if s.get("event") == "prediction":
                s["received"] = now
                # Stamps are wall-clock: newest context frame -> prediction received here.
                s["age_ms"] = (time.time_ns() - s["stamp_ns"]) / 1e6
                self.predictions.append(s)
            elif s.get("event") == "mode":
                self.modes.append((now, s["mode"]))

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name.startswith(f"{NS}/syncvp"):
                with self.lock:
                    self.diag = {kv.key: kv.value for kv in st.values}

    def frame(self, fault: str | None = None) -> None:
        """Publish frame ``t`` (stamped now), or ``fault`` in its place."""
        from syncvp_ros.testing import camera_info_msg, color_msg, depth_msg, synthetic_depth, synthetic_rgb

        h, w, t = self.h, self.w, self.t
        stamp = time.time_ns()
        rgb, depth = synthetic_rgb(h, w, t), synthetic_depth(h, w, t)
        msgs = {"info": camera_info_msg(h, w, stamp), "color": color_msg(rgb, stamp),
                "depth": depth_msg(depth, stamp, encoding=self.depth_encoding)}
        if fault is not None:
            self.faults_sent += 1
            for which, msg in fault_messages(fault, rgb, depth, stamp):
                if which in msgs and msgs[which] is not None:  # the fault replaces the valid frame
                    msgs[which] = None
                self.pub[which].publish(msg)
        for which in ("info", "color", "depth"):
            if msgs[which] is not None and self.sending.get(which, True):
                self.pub[which].publish(msgs[which])
        self.t += 1

    def since(self, t0: float) -> list[dict]:
        with self.lock:
            return [p for p in self.predictions if p["received"] >= t0]

    def close(self) -> None:
        import rclpy

        self.ex.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def fault_messages(kind: str, rgb: np.ndarray, depth: np.ndarray, stamp: int) -> list[tuple[str, object]]:
    """The messages of one fault (topic key, message)."""
    from syncvp_ros.testing import color_msg, depth_msg, image_msg

    h, w = depth.shape
    if kind == "late_depth":
        return [("depth", depth_msg(depth, stamp - 150_000_000))]
    if kind == "late_color":
        return [("color", color_msg(rgb, stamp - 150_000_000))]
    if kind == "future_stamp":
        return [("depth", depth_msg(depth, stamp + 60 * S))]
    if kind == "zero_stamp":
        return [("depth", depth_msg(depth, 0))]
    if kind == "duplicate":
        return [("color", color_msg(rgb, stamp)), ("color", color_msg(rgb, stamp))]
    if kind == "bad_encoding":
        return [("depth", color_msg(rgb, stamp)), ("color", image_msg(("yuv422", h, w, 2 * w, bytes(2 * w * h)),
                                                                      stamp, "cam"))]
    if kind == "truncated":
        msg = depth_msg(depth, stamp)
        msg.data = bytes(msg.data)[:100]
        return [("depth", msg)]
    if kind == "huge_header":
        return [("color", image_msg(("rgb8", 100_000, 100_000, 300_000, bytes(300)), stamp, "cam"))]
    if kind == "nan_depth":
        return [("depth", depth_msg(np.full_like(depth, np.nan), stamp, encoding="32FC1"))]
    if kind == "size_mismatch":
        return [("depth", depth_msg(depth[::2, ::2].copy(), stamp))]
    if kind == "big_endian":
        msg = depth_msg(depth, stamp, encoding="32FC1")
        msg.is_bigendian = 1
        return [("depth", msg)]
    if kind == "burst":  # 20 mixed malformed frames at once
        out = []
        for i, k in enumerate(FAULTS[:-1] * 2):
            out += fault_messages(k, rgb, depth, stamp - i * 7_000_000)
        return out
    raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")


# ---------------------------------------------------------------------------------------------- modes
def soak(args: argparse.Namespace, drv: Driver, pid: int) -> int:
    faults = [f for f in args.faults.split(",") if f] if args.faults else []
    for f in faults:
        fault_messages(f, np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32), 0)  # fail early
    period = 1.0 / args.hz
    t_start = time.monotonic()
    end = t_start + args.minutes * 60
    next_sample = t_start + args.sample_s
    rows: list[dict] = []
    last_sample = t_start
    print(f"{'t (s)':>7} {'RSS MB':>8} {'threads':>7} {'fds':>5} {'pred/s':>7} {'infer p50 ms':>12} "
          f"{'age p50 ms':>10} {'faults':>6} {'in Hz c/d':>10} {'modes':>5}", flush=True)
    i = 0
    while time.monotonic() < end:
        fault = faults[(i // args.fault_every) % len(faults)] if faults and i % args.fault_every == 0 and i else None
        drv.frame(fault)
        i += 1
        now = time.monotonic()
        if now >= next_sample:
            preds = drv.since(last_sample)
            st = proc_stats(pid)
            lat = [p["latency_ms"] for p in preds]
            age = [p["age_ms"] for p in preds]
            with drv.lock:
                hz = f"{drv.diag.get('color rate (Hz)', '?')}/{drv.diag.get('depth rate (Hz)', '?')}"
                switches = len(drv.modes)
            row = {"t": now - t_start, **st, "rate": len(preds) / (now - last_sample),
                   "lat": statistics.median(lat) if lat else float("nan"),
                   "age": statistics.median(age) if age else float("nan"), "faults": drv.faults_sent}
            rows.append(row)
            print(f"{row['t']:7.0f} {row['rss_mb']:8.1f} {row['threads']:7d} {row['fds']:5d} {row['rate']:7.2f} "
                  f"{row['lat']:12.1f} {row['age']:10.1f} {row['faults']:6d} {hz:>10} {switches:5d}", flush=True)
            last_sample, next_sample = now, next_sample + args.sample_s
        time.sleep(max(0.0, t_start + i * period - time.monotonic()))
    return summarise(rows, args.warmup_s)


def summarise(rows: list[dict], warmup_s: float) -> int:
    steady = [r for r in rows if r["t"] >= warmup_s] or rows
    if len(steady) < 2:
        print("too short for a summary (need two samples after warm-up)")
        return 1
    first = steady[0]
    t = np.array([r["t"] for r in steady])
    rss = np.array([r["rss_mb"] for r in steady])
    rate = np.array([r["rate"] for r in steady])
    # RSS moves by a few % between samples (allocator, inference buffers): compare the medians of the first
    # and last quarter, and fit a line, rather than two single samples.
    q = max(len(rss) // 4, 1)
    growth = (np.median(rss[-q:]) - np.median(rss[:q])) / np.median(rss[:q]) * 100
    rss_slope = float(np.polyfit(t / 60, rss, 1)[0]) if len(steady) >= 3 else float("nan")
    slope = float(np.polyfit(t / 60, rate, 1)[0]) if len(steady) >= 3 else float("nan")
    half = len(rate) // 2
    print(f"\nrun {rows[-1]['t'] / 60:.1f} min, {len(rows)} samples; steady state from {first['t']:.0f} s")
    print(f"RSS median first quarter {np.median(rss[:q]):.1f} MB, last quarter {np.median(rss[-q:]):.1f} MB: "
          f"growth {growth:+.2f} % (target < 2 %); fit {rss_slope:+.3f} MB/min; range {rss.min():.1f}.."
          f"{rss.max():.1f} MB")
    print(f"threads {min(r['threads'] for r in steady)}..{max(r['threads'] for r in steady)}, "
          f"fds {min(r['fds'] for r in steady)}..{max(r['fds'] for r in steady)}")
    print(f"prediction rate: mean {rate.mean():.2f}/s, first half {rate[:half].mean():.2f}, second half "
          f"{rate[half:].mean():.2f}, slope {slope:+.3f} per s per minute; min {rate.min():.2f}")
    return 0


def dropout_cycles(args: argparse.Namespace, drv: Driver) -> int:
    period = 1.0 / args.hz

    def run_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            drv.frame()
            time.sleep(period)

    run_for(5.0)  # start-up: context filled, first predictions
    passed = 0
    for c in range(args.dropout_cycles):
        which = ("depth", "color")[c % 2]
        guidance = "rgb_only" if which == "depth" else "depth_only"
        t_off = time.monotonic()
        drv.sending[which] = False
        run_for(args.off_s)
        t_on = time.monotonic()
        drv.sending[which] = True
        run_for(args.on_s)
        with drv.lock:
            switched = any(m == guidance for t, m in drv.modes if t_off <= t <= t_on + 0.5)
        in_guidance = any(p["used_mode"] == guidance for p in drv.since(t_off) if p["received"] <= t_on + 0.5)
        back = any(p["used_mode"] == "full" for p in drv.since(t_on))
        ok = switched and in_guidance and back
        passed += ok
        print(f"cycle {c + 1:3d} {which:5s} off: switched={switched} predicted_in_{guidance}={in_guidance} "
              f"full_again={back}", flush=True)
    print(f"\n{passed}/{args.dropout_cycles} cycles switched mode, kept predicting and came back to full "
          f"({passed / max(args.dropout_cycles, 1):.0%})")
    return 0 if passed == args.dropout_cycles else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--faults", default="late_depth,bad_encoding,nan_depth,size_mismatch,late_color,truncated,"
                                        "future_stamp,huge_header,duplicate,zero_stamp,big_endian,burst",
                    help=f"comma-separated fault mix (empty: valid input only); known: {', '.join(FAULTS)}")
    ap.add_argument("--fault-every", type=int, default=20, help="one fault every N frames")
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--size", default="160x120", help="input WxH")
    ap.add_argument("--depth-encoding", default="16UC1", choices=("16UC1", "32FC1"))
    ap.add_argument("--dds-profile", action="store_true",
                    help="both processes use the large-data Fast DDS profile (syncvp_ros.dds_profile)")
    ap.add_argument("--predict-hz", type=float, default=2.0, help="node predict_rate_hz (0 = unlimited)")
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=60.0, help="RSS growth is measured from here")
    ap.add_argument("--dropout-cycles", type=int, default=0, help="run N dropout cycles instead of a soak")
    ap.add_argument("--off-s", type=float, default=1.5)
    ap.add_argument("--on-s", type=float, default=2.0)
    ap.add_argument("--log", default="soak_node.log", help="the node's output")
    args = ap.parse_args(argv)

    from syncvp_ros.testing import ros_env

    domain = ros_env(int(os.environ["ROS_DOMAIN_ID"]) if os.environ.get("ROS_DOMAIN_ID") else None)
    if args.dds_profile:  # before rclpy starts in this process; the node inherits the environment
        from syncvp_ros.dds_profile import PROFILE

        path = Path(args.log).with_suffix(".fastdds.xml")
        path.write_text(PROFILE)
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path.resolve())
    w, h = (int(v) for v in args.size.split("x"))
    proc = start_node(domain, ["-p", f"predict_rate_hz:={args.predict_hz}", "-p", "dropout_timeout:=0.5"],
                      Path(args.log))
    drv = Driver(domain, h, w, args.depth_encoding)
    try:
        t0 = time.monotonic()
        while not drv.predictions and time.monotonic() - t0 < 120 and proc.poll() is None:
            drv.frame()
            time.sleep(1.0 / args.hz)
        if not drv.predictions:
            print(f"the node never predicted; see {args.log}")
            return 1
        rc = dropout_cycles(args, drv) if args.dropout_cycles else soak(args, drv, proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        drv.close()
    log = Path(args.log).read_text()
    print(f"node exit code {proc.returncode}; tracebacks in its log: {log.count('Traceback')}; "
          f"ERROR lines: {log.count('[ERROR]')}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
