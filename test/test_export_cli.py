"""``syncvp export`` / ``syncvp build-engine``: happy path, config/checkpoint mismatch, missing optional
packages (an install hint, not a traceback)."""
import json
import sys

import pytest
from click.testing import CliRunner

from syncvp_core.checkpoint import save_checkpoint
from syncvp_core.cli import main
from syncvp_core.export.cli import load_for_export
from syncvp_core.export.deps import MissingDependency
from syncvp_core.export.graphs import GRAPH_NAMES
from syncvp_core.export.manifest import ExportError
from syncvp_core.predictor import Predictor
from syncvp_core.testing import micro_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = Predictor.from_config(micro_config(), seed=0).model
    path = tmp_path_factory.mktemp("ckpt") / "micro.safetensors"
    save_checkpoint(path, model.state_dict(), {"config": model.cfg.to_dict(), "stage": "joint", "step": 5})
    return path


@pytest.fixture(scope="module")
def cli_export(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    res = CliRunner().invoke(main, ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--opset", "18"])
    return out, res


def test_export_cli_writes_checked_graphs_and_manifest(cli_export):
    out, res = cli_export
    assert res.exit_code == 0, res.output
    for i, g in enumerate(GRAPH_NAMES, 1):
        assert f"[{i}/{len(GRAPH_NAMES)}] exporting {g}" in res.output  # progress lines
        assert (out / f"{g}.onnx").exists()
    data = json.loads((out / "manifest.json").read_text())
    assert data["opset"] == 18 and data["source"]["checkpoint_sha256"] and data["source"]["step"] == 5
    assert data["source"]["checkpoint"].endswith("micro.safetensors") and data["config"]["name"] == "micro"
    res = CliRunner().invoke(main, ["build-engine", "--export-dir", str(out), "--check-only"])
    assert res.exit_code == 0 and res.output.count("ok for TensorRT") == len(GRAPH_NAMES), res.output


def test_config_that_differs_from_the_checkpoint_is_refused(checkpoint, tmp_path):
    res = CliRunner().invoke(main, ["export", "--checkpoint", str(checkpoint), "--config", "tiny",
                                    "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert "does not match the config stored in" in res.output and "resolution" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "x").exists()


def test_matching_config_is_accepted(checkpoint, micro_yaml):
    model, source = load_for_export(str(checkpoint), None, str(micro_yaml))
    assert model.cfg.name == "micro" and source["checkpoint_sha256"]
    with pytest.raises(ExportError, match="does not match"):
        load_for_export(str(checkpoint), None, "paper")


def test_random_init_and_checkpoint_errors(micro_yaml, tmp_path):
    model, source = load_for_export(None, str(micro_yaml), None, seed=3)
    assert source == {"checkpoint": None, "random_init": str(micro_yaml), "seed": 3}
    r = CliRunner()
    res = r.invoke(main, ["export", "--checkpoint", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "checkpoint not found" in res.output and "Traceback" not in res.output
    res = r.invoke(main, ["export", "--random-init", "tiny", "--config", "tiny", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "drop --config" in res.output
    res = r.invoke(main, ["export", "--random-init", str(micro_yaml), "--opset", "13", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "opset 13 is too old" in res.output


def test_missing_onnx_gives_install_hint(micro_yaml, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    res = CliRunner().invoke(main, ["export", "--random-init", str(micro_yaml), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "pip install 'syncvp_ros[export]'" in res.output and "Traceback" not in res.output
    from syncvp_core.export.onnx_export import export_model

    with pytest.raises(MissingDependency, match="optional package 'onnx'"):
        export_model(Predictor.from_config(micro_config()).model, tmp_path / "o2")


def test_build_engine_without_tensorrt_gives_install_hint(cli_export, monkeypatch):
    out, _ = cli_export
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    res = CliRunner().invoke(main, ["build-engine", "--export-dir", str(out)])
    assert res.exit_code == 1, res.output
    assert "ok for TensorRT" in res.output  # the graph check runs first, then TensorRT is needed
    assert "TensorRT Python wheel" in res.output and "Traceback" not in res.output


def test_help_texts():
    r = CliRunner()
    for cmd in ("export", "build-engine"):
        res = r.invoke(main, [cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output and len(res.output) > 400
