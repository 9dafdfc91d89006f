"""launch/predict.launch.py: checked statically here (launch/launch_ros are not on PyPI), run where ROS is."""
import ast
from pathlib import Path

import pytest
import yaml

from syncvp_ros import params

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch" / "predict.launch.py"
REQUIRED = {"params_file", "namespace", "color_topic", "depth_topic", "backend", "checkpoint", "use_sim_time",
            "log_level"}


def launch_arguments():
    tree = ast.parse(LAUNCH.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return {k.value: (v.elts[0].value, v.elts[1].value) for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError("ARGUMENTS table not found in the launch file")


def test_launch_file_declares_the_documented_arguments():
    args = launch_arguments()
    assert REQUIRED <= set(args)
    for name, (default, text) in args.items():
        assert isinstance(default, str) and text, name


def test_launch_file_defines_generate_launch_description_with_real_launch_imports():
    tree = ast.parse(LAUNCH.read_text())
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("launch_ros.actions", "Node") in imported
    assert ("launch.actions", "DeclareLaunchArgument") in imported
    assert ("launch.substitutions", "LaunchConfiguration") in imported


def test_overridable_parameters_exist_in_the_table_and_params_file():
    file_params = yaml.safe_load((ROOT / "config" / "predict.yaml").read_text())["/**"]["ros__parameters"]
    for name in ("backend", "checkpoint", "color_topic", "depth_topic", "color_info_topic", "depth_info_topic"):
        assert name in params.BY_NAME and name in file_params


def test_launch_description_builds_with_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; runs on a ROS install")
    import importlib.util

    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("predict_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    names = {a.name for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    assert REQUIRED <= names
