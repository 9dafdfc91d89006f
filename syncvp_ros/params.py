"""Every parameter of the predictor node, declared once.

This table is the single source of truth. It feeds:

* the node's ``declare_parameter`` calls and their ``ParameterDescriptor`` (description, range, read-only),
* the on-set validation (:func:`check`: bad values are rejected with the reason),
* ``config/predict.yaml`` (:func:`render_yaml`; a test checks the shipped file against the table),
* the parameter section of ``docs/node.md`` (:func:`render_markdown`),
* the defaults shown by ``launch/predict.launch.py``.

ROS-free on purpose: tests, docs and the launch file import it without rclpy (:func:`descriptor` imports
the ROS message types only when called).

``scope`` says when a change takes effect:

* ``runtime``: applied immediately (sampler steps, sync slop, dropout timeout, ...);
* ``configure``: read when the node is configured/activated; changing it while active is rejected with a
  reason (deactivate + cleanup, change, configure again). This is what makes a failed configure
  (corrupt checkpoint) recoverable without restarting the process;
* ``read_only``: fixed for the life of the process (declared read-only to ROS).

Regenerate the derived files after editing the table::

    python -m syncvp_ros.params --yaml > config/predict.yaml
    python -m syncvp_ros.params --markdown   # paste into docs/node.md between the markers
"""
from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass
from typing import Any

from syncvp_core.model_source import ModelSource

SCOPES = ("runtime", "configure", "read_only")
QOS_NAMES = ("SENSOR_DATA", "DEFAULT", "BEST_EFFORT", "RELIABLE")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type  # str, int, float or bool
    default: Any
    description: str
    group: str
    scope: str = "runtime"
    unit: str = ""
    range: tuple[float, float] | None = None  # inclusive; ints and floats only
    choices: tuple[str, ...] | None = None  # strings only

    @property
    def read_only(self) -> bool:
        return self.scope == "read_only"


def _p(*args: Any, **kw: Any) -> ParamSpec:
    return ParamSpec(*args, **kw)


# Topic defaults follow the RealSense ROS 2 driver with align_depth enabled (depth registered to colour).
PARAMS: tuple[ParamSpec, ...] = (
    # -------------------------------------------------------------------------------- model and backend
    _p("checkpoint", str, "",
       "Model checkpoint file. Empty = the checkpoint shipped with the package. 'random:<config>' (e.g. "
       "'random:tiny') builds a randomly initialised model of that config: for tests and benchmarks "
       "only, its predictions are noise.", "Model", scope="configure"),
    _p("backend", str, "auto", "Inference backend passed to the Predictor. 'auto' = the fastest one that is "
       "installed and passes its self-check here, measured at configure.", "Model", scope="configure",
       choices=("auto", "torch", "onnxruntime", "tensorrt")),
    _p("device", str, "auto", "Torch device: 'auto' (cuda when available, else cpu), 'cpu', 'cuda', "
       "'cuda:N'.", "Model", scope="configure"),
    _p("torch_threads", int, 0, "CPU threads torch may use for inference (torch.set_num_threads). 0 = torch's "
       "default (all cores). Set it on machines shared with other heavy processes: oversubscribed "
       "OpenMP threads can make CPU inference many times slower.", "Model", scope="configure",
       unit="threads", range=(0, 256)),
    _p("horizon", int, 0, "Number of future frames K published per prediction (topics h1..hK). 0 = the "
       "model's chunk length.", "Model", scope="configure", unit="frames", range=(0, 64)),
    _p("warmup", int, 1, "Warm-up inferences run at configure, so first-frame latency is not in the "
       "statistics.", "Model", scope="configure", unit="runs", range=(0, 20)),
    _p("steps", int, 0, "DDIM sampler steps per prediction. 0 = the model's default. Fewer steps = "
       "lower latency, lower quality.", "Model", unit="steps", range=(0, 1000)),
    _p("draws", int, 0, "Sampler draws averaged (as latents) into each forecast. 0 = the model's default "
       "(the shipped model: 4). 1 = the fastest (about 15 % less forecast time for the shipped model), "
       "slightly less accurate (MODEL_CARD.md).", "Model", unit="draws", range=(0, 64)),
    _p("seed", int, 0, "Sampler noise seed (same context + seed = same prediction). -1 = fresh noise "
       "for every prediction.", "Model", range=(-1, 2**31 - 1)),
    # -------------------------------------------------------------------------------- inputs
    _p("color_topic", str, "/camera/color/image_raw", "Colour image (rgb8, bgr8, rgba8, bgra8, mono8).",
       "Inputs", scope="configure"),
    _p("depth_topic", str, "/camera/aligned_depth_to_color/image_raw",
       "Depth image registered to the colour camera (16UC1 millimetres or 32FC1 metres).", "Inputs",
       scope="configure"),
    _p("color_info_topic", str, "/camera/color/camera_info", "Colour camera_info (intrinsics of the "
       "published predictions).", "Inputs", scope="configure"),
    _p("depth_info_topic", str, "/camera/aligned_depth_to_color/camera_info", "Depth camera_info (used "
       "when no colour camera_info is available).", "Inputs", scope="configure"),
    _p("input_qos", str, "SENSOR_DATA", "QoS of the input subscriptions: SENSOR_DATA/BEST_EFFORT (best "
       "effort, receives from reliable and best-effort publishers) or DEFAULT/RELIABLE (reliable, only "
       "from reliable publishers).", "Inputs", scope="configure", choices=QOS_NAMES),
    _p("input_qos_depth", int, 5, "History depth (keep-last) of the input subscriptions.", "Inputs",
       scope="configure", unit="messages", range=(1, 100)),
    _p("allow_size_mismatch", bool, False, "If colour and depth sizes differ: false = reject the pair "
       "(counted, warned); true = resize depth to the colour size (only correct for depth registered to "
       "colour at another resolution).", "Inputs"),
    # -------------------------------------------------------------------------------- synchronisation
    _p("sync_slop", float, 0.02, "Colour and depth frames pair when their stamps differ by at most this.",
       "Synchronisation", unit="s", range=(0.0, 1.0)),
    _p("sync_queue", int, 10, "Frames per stream kept while waiting for a partner.", "Synchronisation",
       scope="configure", unit="frames", range=(1, 100)),
    _p("context_stride", int, 0, "Spacing of context frames. 0 = by stamps: keep frames spaced at the "
       "model's frame interval (1 / context_rate_hz). N >= 1 = every N-th synchronised frame, whatever "
       "the stamps.", "Synchronisation", scope="configure", unit="frames", range=(0, 100)),
    _p("context_rate_hz", float, 0.0, "Target context frame rate for context_stride = 0. 0 = the rate "
       "the model was trained at (from the checkpoint).", "Synchronisation", scope="configure", unit="Hz",
       range=(0.0, 1000.0)),
    # -------------------------------------------------------------------------------- dropout
    _p("dropout_timeout", float, 0.5, "A modality is missing when no usable frame arrived for this long; "
       "the node then predicts from the other one (guidance mode).", "Dropout", unit="s",
       range=(0.01, 60.0)),
    _p("depth_invalid_threshold", float, 0.9, "A depth frame with a larger fraction of invalid pixels "
       "(NaN, 0, inf) is unusable.", "Dropout", unit="fraction", range=(0.0, 1.0)),
    _p("force_mode", str, "auto", "auto = full when both sensors work, guidance mode when one drops out; "
       "rgb_only / depth_only = always condition on that modality only.", "Dropout",
       choices=("auto", "rgb_only", "depth_only")),
    _p("depth_hold", float, 1.0, "While depth is missing (rgb_only mode), predicted depth comes from one "
       "forecast made from the newest context that had both sensors, read that much further ahead, for up to "
       "this long after that context: far better than depth inferred from colour (MODEL_CARD.md, 'Depth "
       "hold'). Older, or 0 = off: depth inferred from colour (inferred_depth applies).", "Dropout", unit="s",
       range=(0.0, 10.0)),
    _p("inferred_depth", str, "publish", "What happens to the depth predicted from colour alone (rgb_only "
       "mode past depth_hold): publish = depth images and clouds as in full mode; withhold = colour only, no "
       "depth images, clouds or depth spread until depth returns (the shipped model's colour-only depth is far "
       "off on real scenes: MODEL_CARD.md). Diagnostics say which.", "Dropout", choices=("publish", "withhold")),
    # -------------------------------------------------------------------------------- outputs
    _p("depth_encoding", str, "32FC1", "Encoding of the predicted depth: 32FC1 (metres, NaN invalid) or "
       "16UC1 (millimetres, 0 invalid).", "Outputs", scope="configure", choices=("32FC1", "16UC1")),
    _p("output_height", int, 0, "Height of the published predictions. 0 = the predictor's output size "
       "(the sensor size).", "Outputs", scope="configure", unit="px", range=(0, 8192)),
    _p("output_width", int, 0, "Width of the published predictions. 0 = the predictor's output size.",
       "Outputs", scope="configure", unit="px", range=(0, 8192)),
    _p("output_qos", str, "DEFAULT", "QoS of the prediction publishers: DEFAULT/RELIABLE (reaches every "
       "subscriber: RViz, recorders, best-effort nodes) or SENSOR_DATA/BEST_EFFORT.", "Outputs",
       scope="configure", choices=QOS_NAMES),
    _p("output_qos_depth", int, 2, "History depth (keep-last) of the prediction publishers.", "Outputs",
       scope="configure", unit="messages", range=(1, 100)),
    # -------------------------------------------------------------------------------- planner outputs
    _p("num_samples", int, 1, "Forecasts drawn per prediction, in one batched sampler call (same context, "
       "different noise). > 1: the image topics carry their mean and ~/pred/h{k}/depth/std, color/std "
       "their per-pixel spread (docs/planner.md). Latency grows with N.", "Planner outputs",
       unit="samples", range=(1, 32)),
    _p("points", bool, True, "Publish the predicted depth as a point cloud ~/pred/h{k}/points (XYZ metres "
       "+ packed RGB; computed only while subscribed).", "Planner outputs"),
    _p("points_organized", bool, False, "Point cloud layout: false = dense (invalid points dropped, height "
       "1); true = organised (image grid, invalid = NaN).", "Planner outputs"),
    _p("points_decimation", int, 1, "Keep every N-th row and column of the predicted depth in the point "
       "cloud (N^2 fewer points).", "Planner outputs", unit="px", range=(1, 16)),
    _p("points_stamp", str, "future", "Stamp of the point clouds: future = the horizon step's time (like "
       "the images); context = the newest context frame's time, so that tf2 (e.g. a Nav2 costmap) can "
       "transform them now (it cannot look up future poses).", "Planner outputs",
       choices=("future", "context")),
    _p("color_std_encoding", str, "32FC1", "Encoding of ~/pred/h{k}/color/std: 32FC1 (std in 8-bit "
       "intensity units, RMS over R, G, B) or mono8 (2 x std, saturated at 255).", "Planner outputs",
       choices=("32FC1", "mono8")),
    # -------------------------------------------------------------------------------- scheduling
    _p("predict_rate_hz", float, 0.0, "Upper limit on predictions per second. 0 = as fast as the "
       "inference allows.", "Scheduling", unit="Hz", range=(0.0, 1000.0)),
    _p("always_predict", bool, False, "Predict even when nobody subscribes to any prediction topic "
       "(normally the node is lazy).", "Scheduling"),
    _p("diagnostics_period", float, 1.0, "Period of the /diagnostics and ~/status heartbeat.",
       "Scheduling", scope="read_only", unit="s", range=(0.05, 60.0)),
    _p("autostart", bool, True, "Configure and activate at start-up (false = wait for lifecycle "
       "transitions, e.g. from a lifecycle manager).", "Scheduling", scope="read_only"),
)

BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(p.group for p in PARAMS))


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def check(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name``, or None when it is."""
    spec = BY_NAME.get(name)
    if spec is None:
        return None  # not ours (use_sim_time, qos overrides): ROS validates those
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        return f"{name} must be {spec.type.__name__}, got {value!r}"
    if spec.type is float and not math.isfinite(value):
        return f"{name} must be finite, got {value!r}"
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        unit = f" {spec.unit}" if spec.unit else ""
        return f"{name}={value!r} is outside [{spec.range[0]}, {spec.range[1]}]{unit}"
    if spec.choices is not None and value not in spec.choices:
        return f"{name}={value!r} must be one of {', '.join(spec.choices)}"
    if spec.name == "device" and not _valid_device(value):
        return f"device={value!r} must be auto, cpu, cuda or cuda:N"
    if spec.name == "checkpoint" and ModelSource.parse(value).random_config == "":
        return "checkpoint='random:' needs a config name, e.g. 'random:tiny'"
    if spec.name.endswith("_topic") and not _valid_topic(value):
        return f"{name}={value!r} is not a valid topic name"
    return None


# Parameters every rclpy node has; not in the table but never "unknown".
ROS_STANDARD = ("use_sim_time", "start_type_description_service")


def unknown_names(names: list[str]) -> list[str]:
    """One line per name that is neither in the table nor a standard ROS parameter, with the closest
    known name when there is one (a typo in a params file or ``-p`` is otherwise ignored silently)."""
    lines = []
    for name in names:
        if name in BY_NAME or name in ROS_STANDARD or name.startswith("qos_overrides."):
            continue
        near = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.6)
        lines.append(f"unknown parameter {name!r} ignored" + (f"; did you mean {near[0]!r}?" if near else
                                                            "; python -m syncvp_ros.params --yaml lists them"))
    return lines


def descriptor(spec: ParamSpec) -> Any:
    """The ROS ``ParameterDescriptor`` of a table entry (description, type, range, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    ros_type = {str: ParameterType.PARAMETER_STRING, int: ParameterType.PARAMETER_INTEGER,
                float: ParameterType.PARAMETER_DOUBLE, bool: ParameterType.PARAMETER_BOOL}[spec.type]
    d = ParameterDescriptor(name=spec.name, type=ros_type, read_only=spec.read_only)
    unit = f" [{spec.unit}]" if spec.unit else ""
    scope = {"runtime": "", "configure": " Applied at configure.", "read_only": ""}[spec.scope]
    d.description = f"{spec.description}{unit}{scope}"
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.range is not None and spec.type is int:
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=0)]
    if spec.range is not None and spec.type is float:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                     to_value=float(spec.range[1]), step=0.0)]
    return d


def _valid_device(value: str) -> bool:
    if value in ("auto", "cpu", "cuda"):
        return True
    return value.startswith("cuda:") and value[5:].isdigit()


def _valid_topic(value: str) -> bool:
    if not value or value.endswith("/") or "//" in value or " " in value:
        return False
    return all(c.isalnum() or c in "_/~{}" for c in value)


# ----------------------------------------------------------------------------------------------------
# Derived files.


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(indent) + len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    if line:
        lines.append(line)
    return [indent + ln for ln in lines]


def _facts(p: ParamSpec) -> str:
    parts = [p.type.__name__]
    if p.unit:
        parts.append(p.unit)
    if p.range is not None:
        parts.append(f"range [{p.range[0]}, {p.range[1]}]")
    if p.choices is not None:
        parts.append("one of " + "|".join(p.choices))
    parts.append({"runtime": "changeable at runtime", "configure": "applied at configure",
                  "read_only": "read-only"}[p.scope])
    return ", ".join(parts)


def render_yaml() -> str:
    """The text of ``config/predict.yaml``: every parameter, its default and a comment."""
    out = [
        "# Parameters of the syncvp predictor node (syncvp_ros/predictor_node.py), with their defaults.",
        "# Generated from the table in syncvp_ros/params.py: python -m syncvp_ros.params --yaml",
        "# '/**' matches any node name and namespace. use_sim_time (a standard ROS parameter) is set by",
        "# the launch file.",
        "/**:",
        "  ros__parameters:",
    ]
    for group in GROUPS:
        out.append(f"    # ---- {group}")
        for p in PARAMS:
            if p.group != group:
                continue
            out.extend(_wrap(f"{p.description} ({_facts(p)})", 110, "    # "))
            out.append(f"    {p.name}: {_yaml_scalar(p.default)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md_default(p: ParamSpec) -> str:
    if p.type is str:
        return f'"{p.default}"'
    return _yaml_scalar(p.default)


def render_markdown() -> str:
    """The parameter section of docs/node.md, in image_pipeline's layout."""
    out = []
    for group in GROUPS:
        out.append(f"#### {group}\n")
        for p in PARAMS:
            if p.group != group:
                continue
            extra = []
            if p.unit:
                extra.append(f"unit: {p.unit}")
            if p.range is not None:
                extra.append(f"range [{p.range[0]}, {p.range[1]}]")
            if p.choices is not None:
                extra.append("one of " + ", ".join(f"`{c}`" for c in p.choices))
            extra.append({"runtime": "changeable at runtime", "configure": "applied at configure",
                          "read_only": "read-only"}[p.scope])
            out.append(f"- `{p.name}` ({p.type.__name__}, {_md_default(p)}): {p.description} "
                       f"_({'; '.join(extra)})_")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--yaml"]:
        sys.stdout.write(render_yaml())
    elif args == ["--markdown"]:
        sys.stdout.write(render_markdown())
    else:
        sys.stderr.write("usage: python -m syncvp_ros.params --yaml | --markdown\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
