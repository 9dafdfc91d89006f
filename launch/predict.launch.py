"""Launch the syncvp predictor node.

    ros2 launch syncvp_ros predict.launch.py
    ros2 launch syncvp_ros predict.launch.py namespace:=front checkpoint:=/models/syncvp.safetensors \\
        color_topic:=/front/color/image_raw depth_topic:=/front/aligned_depth_to_color/image_raw \\
        backend:=tensorrt use_sim_time:=true log_level:=debug

Parameters come from ``params_file`` (default: the package's config/predict.yaml, which lists every
parameter with its default and a comment). Launch arguments left empty keep the params file's value; a
non-empty one overrides it. Topic arguments are applied as remappings of the node's input topics, so the
node's topic parameters and the camera's names both stay visible in ``ros2 node info``.
"""
from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

SIGTERM_TIMEOUT_S = 20

# name -> (default, description). Empty default = "keep the params file value".
ARGUMENTS = {
    "params_file": ("", "Parameters YAML (default: share/syncvp_ros/config/predict.yaml)."),
    "namespace": ("", "Namespace of the node (run one instance per camera in its own namespace)."),
    "node_name": ("syncvp", "Name of the node."),
    "color_topic": ("", "Colour image topic (remaps the color_topic parameter's topic)."),
    "depth_topic": ("", "Depth image topic, registered to colour (remaps depth_topic)."),
    "color_info_topic": ("", "Colour camera_info topic (remaps color_info_topic)."),
    "depth_info_topic": ("", "Depth camera_info topic (remaps depth_info_topic)."),
    "backend": ("", "Inference backend: auto, torch, onnxruntime, tensorrt (empty: params file)."),
    "checkpoint": ("", "Model checkpoint path (empty: params file, whose default is the shipped model)."),
    "use_sim_time": ("false", "Use /clock (bag replay with bag_player --clock)."),
    "log_level": ("info", "Logging level: debug, info, warn, error."),
    "dds_large_data": ("true", "Give the node Fast DDS's large-data profile (64 MB shared memory; see "
                               "syncvp_ros/dds_profile.py) unless FASTDDS_DEFAULT_PROFILES_FILE is set."),
}


def _setup(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = value["params_file"] or os.path.join(
        get_package_share_directory("syncvp_ros"), "config", "predict.yaml")

    overrides = {"use_sim_time": value["use_sim_time"].strip().lower() in ("true", "1", "yes")}
    for name in ("backend", "checkpoint"):
        if value[name]:
            overrides[name] = value[name]

    # Remap from the topic the node subscribes to (its parameter: params file value or table default).
    import yaml

    from syncvp_ros.params import BY_NAME

    with open(params_file) as f:
        data = yaml.safe_load(f) or {}
    file_params = {}
    for section in data.values():
        if isinstance(section, dict):
            file_params.update(section.get("ros__parameters", {}) or {})
    remappings = []
    for name in ("color_topic", "depth_topic", "color_info_topic", "depth_info_topic"):
        if value[name]:
            remappings.append((str(file_params.get(name, BY_NAME[name].default)), value[name]))

    # Bursts of full-size predicted images take seconds with Fast DDS defaults (0.5 MB shared-memory
    # segment): give the publishing side a large segment. Publisher-side is enough for our outputs.
    env = {}
    if value["dds_large_data"].strip().lower() in ("true", "1", "yes") and \
            "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ and \
            os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp":
        import tempfile

        from syncvp_ros.dds_profile import PROFILE

        profile = os.path.join(tempfile.gettempdir(), "syncvp_fastdds_large_data.xml")
        with open(profile, "w") as f:
            f.write(PROFILE)
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile

    node = Node(
        package="syncvp_ros",
        executable="predictor_node",
        name=value["node_name"],
        namespace=value["namespace"],
        output="screen",
        emulate_tty=True,
        parameters=[params_file, overrides],
        remappings=remappings,
        ros_arguments=["--log-level", value["log_level"]],
        additional_env=env,
        # On exit the node frees torch and DDS; on a busy CPU that outlasts launch's default 5 s, after
        # which Ctrl-C would escalate to SIGTERM. A sigterm_timeout given to ros2 launch still wins.
        sigterm_timeout=LaunchConfiguration("sigterm_timeout", default=str(SIGTERM_TIMEOUT_S)),
    )
    return [node]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_setup)])
