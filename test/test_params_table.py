"""Parameters are declared once: the table, config/predict.yaml, docs/node.md and the node agree."""
import re
from pathlib import Path

import pytest
import yaml

from syncvp_ros import params

ROOT = Path(__file__).resolve().parent.parent
YAML = ROOT / "config" / "predict.yaml"
DOC = ROOT / "docs" / "node.md"


def yaml_params():
    data = yaml.safe_load(YAML.read_text())
    return data["/**"]["ros__parameters"]


def test_yaml_has_every_parameter_with_its_default():
    file_params = yaml_params()
    assert list(file_params) == [p.name for p in params.PARAMS]
    for p in params.PARAMS:
        assert file_params[p.name] == p.default and type(file_params[p.name]) is p.type, p.name


def test_every_yaml_parameter_has_a_comment():
    lines = YAML.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^    (\w+):", line)
        if m:
            assert lines[i - 1].strip().startswith("#"), f"{m.group(1)} has no comment"


def test_yaml_is_what_the_table_renders():
    assert YAML.read_text() == params.render_yaml(), "regenerate: python -m syncvp_ros.params --yaml"


def test_docs_list_every_parameter_as_rendered():
    assert params.render_markdown() in DOC.read_text(), \
        "docs/node.md parameter section is stale: python -m syncvp_ros.params --markdown"


def test_defaults_pass_validation_and_bad_values_are_rejected_with_a_reason():
    for p in params.PARAMS:
        assert params.check(p.name, p.default) is None, p.name
    assert "outside" in params.check("steps", -1)
    assert "one of" in params.check("backend", "cuda")
    assert "must be float" in params.check("sync_slop", "fast")
    assert "finite" in params.check("sync_slop", float("nan"))
    assert "device" in params.check("device", "gpu0")
    assert "topic" in params.check("color_topic", "bad topic")
    assert params.check("sync_slop", 1) is None  # ints are fine for floats
    assert params.check("use_sim_time", True) is None  # not ours


def test_table_entries_are_well_formed():
    for p in params.PARAMS:
        assert p.type in (str, int, float, bool) and isinstance(p.default, p.type)
        assert p.scope in params.SCOPES and p.description.strip()
        assert p.range is None or p.type in (int, float)
        assert p.choices is None or p.type is str


def test_node_declares_exactly_the_table_and_accepts_the_params_file():
    pytest.importorskip("rclpy")
    import rclpy
    from rclpy.context import Context

    from syncvp_ros.predictor_node import PredictorNode
    from syncvp_ros.testing import ros_env

    domain = ros_env()
    ctx = Context()
    # The params file goes through ROS's own YAML parser, as with --params-file on the command line.
    rclpy.init(context=ctx, domain_id=domain, args=["--ros-args", "--params-file", str(YAML)])
    try:
        node = PredictorNode(context=ctx)
        try:
            standard = {"use_sim_time", "start_type_description_service"}  # declared by rclpy itself
            declared = {n for n in node._parameters if n not in standard and not n.startswith("qos_overrides")}
            assert declared == {p.name for p in params.PARAMS}
            for p in params.PARAMS:
                assert node.get_parameter(p.name).value == p.default
                d = node.describe_parameter(p.name)
                assert d.read_only == p.read_only
                if p.range is not None and p.type is int:
                    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == p.range
                if p.range is not None and p.type is float:
                    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == p.range
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
