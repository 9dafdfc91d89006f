"""Cost of the planner outputs: num_samples 1/2/4 and point clouds on/off, as ratios to the plain node.

    python bench/planner_outputs.py [--size 640x480] [--steps 0] [--horizon 0] [--rounds 4] [--threads 1]

One node process (``python -m syncvp_ros.predictor_node``, random-init ``tiny``, the large-data Fast DDS
profile) and one driver (bench/node_overhead.py's). The driver subscribes to every output of every
horizon step (colour, depth, camera_info, points, depth/std, color/std), so nothing is skipped as
unsubscribed, and switches the configuration through the node's parameters between predictions:

    plain           num_samples 1, points off     (the node as before issue 15)
    samples2/4      num_samples 2 / 4, points off (the images carry the mean, the std topics the spread)
    points          num_samples 1, points on      (one PointCloud2 per horizon step)
    points+samples4 num_samples 4, points on

Configurations are interleaved round-robin (one prediction each per round), so slow drifts of a shared
machine hit all of them alike. Per prediction: end-to-end time (publishing the frame that completes the
context -> the last output of that prediction received), the node's inference time and publish time
(from ``~/status``), and the node process's CPU time (utime + stime from /proc). Medians, and ratios to
``plain`` measured in the same run. Then, in this process with the node stopped, ``Predictor.predict``
with ``num_samples`` N in one batched call against N separate calls (what batching saves).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from node_overhead import Driver, S, start_node, stop_node, use_dds_profile  # noqa: E402

CONFIGS = {  # name -> (num_samples, points)
    "plain": (1, False),
    "samples2": (2, False),
    "samples4": (4, False),
    "points": (1, True),
    "points+samples4": (4, True),
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class PlannerDriver(Driver):
    """The overhead driver plus the planner topics and a parameter client for the node."""

    def __init__(self, domain: int, ns: str, horizon: int):
        super().__init__(domain, ns, horizon)
        from rcl_interfaces.srv import SetParameters
        from sensor_msgs.msg import Image, PointCloud2

        self.horizon = horizon
        base = f"{ns}/syncvp/pred"
        for k in range(1, horizon + 1):
            for t, suffix in ((PointCloud2, "points"), (Image, "depth/std"), (Image, "color/std")):
                self.node.create_subscription(t, f"{base}/h{k}/{suffix}", self._on_output, 10)
        self.params = self.node.create_client(SetParameters, f"{ns}/syncvp/set_parameters")
        self.status_count = 0

    def set(self, **values) -> None:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        fut = self.params.call_async(req)
        end = time.monotonic() + 10
        while not fut.done():
            if time.monotonic() > end:
                raise RuntimeError(f"setting {values} timed out")
            time.sleep(0.01)
        bad = [r.reason for r in fut.result().results if not r.successful]
        if bad:
            raise RuntimeError(f"node refused {values}: {bad}")

    def configure(self, num_samples: int, points: bool) -> None:
        self.set(num_samples=num_samples, points=points)
        self.expected = self.horizon * (3 + (1 if points else 0) + (2 if num_samples > 1 else 0))


def run(h: int, w: int, steps: int, horizon: int, rounds: int) -> None:
    import torch

    from syncvp_core.predictor import Predictor
    from syncvp_ros.testing import camera_info_msg, color_msg, depth_msg, ros_env, synthetic_depth, synthetic_rgb

    pred = Predictor.from_config("tiny", seed=0)
    horizon = horizon or pred.chunk_frames
    steps = steps or pred.config.sampler.steps
    dt = int(S / pred.frame_rate_hz)
    domain = ros_env()
    use_dds_profile()
    ns = "/bench"
    proc, log = start_node(ns, steps, horizon)
    drv = PlannerDriver(domain, ns, horizon)
    n_frames = pred.context_frames + (rounds + 1) * len(CONFIGS) + 2
    msgs = [(color_msg(synthetic_rgb(h, w, t), S + t * dt), depth_msg(synthetic_depth(h, w, t), S + t * dt,
                                                                     encoding="16UC1"),
             camera_info_msg(h, w, S + t * dt)) for t in range(n_frames)]
    results: dict[str, dict[str, list[float]]] = {c: {"e2e": [], "cpu": [], "infer": [], "publish": []}
                                                  for c in CONFIGS}
    try:
        deadline = time.monotonic() + 120
        while drv.node.count_publishers(f"{ns}/syncvp/pred/h{horizon}/points") == 0 or \
                drv.node.count_subscribers("/camera/aligned_depth_to_color/image_raw") == 0 or \
                not drv.params.service_is_ready():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("node did not come up:\n" + "".join(log[-30:]))
            time.sleep(0.1)
        time.sleep(1.0)
        for t in range(pred.context_frames - 1):
            drv.publish(*msgs[t])
            time.sleep(0.2)
        t = pred.context_frames - 1
        for r in range(rounds + 1):  # round 0 warms every configuration up (discovery, first allocations)
            for name, (n, points) in CONFIGS.items():
                drv.configure(n, points)
                stamps = [S + t * dt + k * dt for k in range(1, horizon + 1)]
                n_status = len(drv.statuses)
                c0 = cpu_seconds(proc.pid)
                t0 = drv.publish(*msgs[t])
                t1 = drv.wait_outputs(stamps, timeout=300)
                if t1 is None:
                    raise RuntimeError(f"{name}: no complete prediction for frame {t}:\n" + "".join(log[-30:]))
                end = time.monotonic() + 5  # the status line follows the last output
                while len(drv.statuses) == n_status and time.monotonic() < end:
                    time.sleep(0.005)
                c1 = cpu_seconds(proc.pid)
                if r:
                    st = drv.statuses[-1]
                    res = results[name]
                    res["e2e"].append(t1 - t0)
                    res["cpu"].append(c1 - c0)
                    res["infer"].append(st["latency_ms"] / 1e3)
                    res["publish"].append(st["publish_ms"] / 1e3)
                t += 1
                time.sleep(0.1)
    finally:
        drv.close()
        stop_node(proc)

    med = {c: {k: statistics.median(v) for k, v in res.items()} for c, res in results.items()}
    base = med["plain"]
    print(f"\n== planner outputs at {w}x{h}: tiny (random init), {steps} DDIM steps, horizon {horizon}, "
          f"{rounds} rounds, torch threads {torch.get_num_threads()} ==")
    print(f"  {'config':16s} {'end-to-end':>11s} {'ratio':>6s} {'inference':>10s} {'ratio':>6s} "
          f"{'publish':>9s} {'node CPU':>9s} {'ratio':>6s}")
    for c, m in med.items():
        print(f"  {c:16s} {m['e2e'] * 1e3:9.0f}ms {m['e2e'] / base['e2e']:6.2f} {m['infer'] * 1e3:8.0f}ms "
              f"{m['infer'] / base['infer']:6.2f} {m['publish'] * 1e3:7.1f}ms {m['cpu']:8.2f}s "
              f"{m['cpu'] / base['cpu']:6.2f}")
    print("  (medians per prediction; ratios to 'plain' in this run; node CPU = the node process's "
          "user + system time for that prediction)")
    batching(pred, msgs, h, w, steps, horizon, rounds)


def batching(pred, msgs, h: int, w: int, steps: int, horizon: int, rounds: int) -> None:
    """In this process, node idle: N samples in one batched call against N separate calls, interleaved."""
    from syncvp_core.data.encodings import decode_color, decode_depth

    c = pred.context_frames
    rgb = np.stack([decode_color(m[0].encoding, h, w, m[0].step, 0, m[0].data) for m in msgs[:c]])
    depth = np.stack([decode_depth(m[1].encoding, h, w, m[1].step, 0, m[1].data) for m in msgs[:c]])
    times: dict[str, list[float]] = {}
    for r in range(rounds + 1):
        for n in (1, 2, 4):
            t0 = time.perf_counter()
            pred.predict(rgb, depth, horizon=horizon, steps=steps, seed=r, num_samples=n)
            t1 = time.perf_counter()
            if n > 1:
                for i in range(n):
                    pred.predict(rgb, depth, horizon=horizon, steps=steps, seed=r * 10 + i)
            t2 = time.perf_counter()
            if r:
                times.setdefault(f"batched{n}", []).append(t1 - t0)
                if n > 1:
                    times.setdefault(f"separate{n}", []).append(t2 - t1)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n== Predictor.predict in this process ({w}x{h}, {steps} steps, horizon {horizon}) ==")
    for n in (1, 2, 4):
        b = med[f"batched{n}"]
        line = f"  num_samples {n}: one batched call {b * 1e3:7.0f} ms ({b / med['batched1']:.2f}x N=1)"
        if n > 1:
            sep = med[f"separate{n}"]
            line += f"; {n} separate calls {sep * 1e3:7.0f} ms -> batched / separate {b / sep:.2f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="640x480", help="input WxH (default 640x480)")
    ap.add_argument("--steps", type=int, default=0, help="DDIM steps (0 = the model's default)")
    ap.add_argument("--horizon", type=int, default=0, help="predicted frames (0 = the model's chunk)")
    ap.add_argument("--rounds", type=int, default=4, help="timed predictions per configuration (default 4)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the node (default 1)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    import torch

    torch.set_num_threads(args.threads)
    run(h, w, args.steps, args.horizon, args.rounds)


if __name__ == "__main__":
    main()
