"""ONNX export parity: every exported graph and every guidance mode, onnxruntime CPU vs torch eager (fp32),
and a full DDIM prediction through the onnxruntime backend vs the torch backend."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from syncvp_core.backends.select import create_backend  # noqa: E402
from syncvp_core.diffusion.guidance import GUIDED  # noqa: E402
from syncvp_core.export.graphs import DENOISER, GRAPH_NAMES, example_inputs, graph_module, graph_specs  # noqa: E402
from syncvp_core.export.onnx_cache import ensure_export, export_dir_for  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.testing import micro_config  # noqa: E402

TOL = 1e-4
MODES = {m.value: [float(x) for x in m.needs] for m in GUIDED}  # mode -> presence flags


@pytest.fixture(scope="module")
def pred():
    return Predictor.from_config(micro_config(), seed=0)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    # Session-wide: the export tests of other files reuse these (slow) exports of the same micro model.
    return tmp_path_factory.getbasetemp() / "syncvp-export-cache"


@pytest.fixture(scope="module")
def static_export(pred, cache_root):
    return ensure_export(pred.model, cache_root, dynamic_batch=False)


@pytest.fixture(scope="module")
def dynamic_export(pred, cache_root):
    """The dynamic-batch export the backends make on the fly (one export serves several tests: exports are slow)."""
    return ensure_export(pred.model, cache_root)


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _compare(pred, manifest, name, args):
    spec = graph_specs(pred.config, args[0].shape[0])[name]
    with torch.no_grad():
        ref = graph_module(pred.model, name)(*args)
    ref = (ref,) if isinstance(ref, torch.Tensor) else ref
    feeds = {n: a.numpy() for n, a in zip(spec.input_names, args)}
    out = _session(manifest.onnx_path(name)).run(spec.output_names, feeds)
    assert len(out) == len(ref)
    for o, r, n in zip(out, ref, spec.output_names):
        assert o.shape == tuple(r.shape), n
        err = float(np.abs(o - r.numpy()).max())
        assert err <= TOL, f"{name}/{n}: max abs error {err:.2e} > {TOL}"


@pytest.mark.parametrize("name", [g for g in GRAPH_NAMES if g != DENOISER])
def test_autoencoder_graphs_match_torch(pred, static_export, name):
    spec = graph_specs(pred.config, 1)[name]
    _compare(pred, static_export, name, example_inputs(spec, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("mode", list(MODES))
def test_denoiser_step_matches_torch_in_every_guidance_mode(pred, static_export, mode):
    spec = graph_specs(pred.config, 1)[DENOISER]
    args = list(example_inputs(spec, torch.Generator().manual_seed(2)))
    args[spec.input_names.index("present")] = torch.tensor([MODES[mode]])
    _compare(pred, static_export, DENOISER, tuple(args))


def test_guidance_flag_changes_the_exported_output(pred, static_export):
    """The presence input is live in the graph (not constant-folded away by the trace)."""
    spec = graph_specs(pred.config, 1)[DENOISER]
    args = {n: a.numpy() for n, a in zip(spec.input_names, example_inputs(spec, torch.Generator().manual_seed(3)))}
    sess = _session(static_export.onnx_path(DENOISER))
    full = sess.run(None, args)
    args["present"] = np.array([[1.0, 0.0]], np.float32)
    rgb_only = sess.run(None, args)
    assert max(float(np.abs(a - b).max()) for a, b in zip(full, rgb_only)) > 1e-6


def test_dynamic_batch_mixes_guidance_modes_in_one_batch(pred, dynamic_export):
    spec = graph_specs(pred.config, 3)[DENOISER]
    args = list(example_inputs(spec, torch.Generator().manual_seed(4)))
    args[spec.input_names.index("present")] = torch.tensor(list(MODES.values()))
    _compare(pred, dynamic_export, DENOISER, tuple(args))
    for name in ("encoder_rgb", "decoder_depth"):
        _compare(pred, dynamic_export, name, example_inputs(graph_specs(pred.config, 2)[name]))


def test_manifest_records_shapes_names_opset_and_source(pred, static_export):
    data = json.loads((static_export.path / "manifest.json").read_text())
    assert data["opset"] >= 17 and data["batch"] == 1 and data["dynamic_batch"] is False
    assert set(data["graphs"]) == set(GRAPH_NAMES)
    step = data["graphs"][DENOISER]
    names = [i["name"] for i in step["inputs"]]
    assert names[:3] == ["x_rgb_xy", "x_rgb_xt", "x_rgb_yt"] and "t" in names and names[-1] == "present"
    assert {i["name"]: i["dtype"] for i in step["inputs"]}["t"] == "int64"
    assert [o["name"] for o in step["outputs"]][0] == "eps_rgb_xy"
    c = pred.config
    enc = data["graphs"]["encoder_rgb"]["inputs"][0]
    assert enc["shape"] == [1, 3, c.context_frames, *c.resolution]
    dec = data["graphs"]["decoder_depth"]["outputs"][0]
    assert dec["shape"] == [1, 1, c.chunk_frames, *c.resolution]
    assert len(data["source"]["weights_sha256"]) == 64 and data["config"]["name"] == c.name
    for g in data["graphs"].values():
        assert len(g["sha256"]) == 64 and "Einsum" not in g["ops"]


def _clip(seed=0, t=3, h=20, w=24):
    r = np.random.default_rng(seed)
    return r.integers(0, 256, (t, h, w, 3), dtype=np.uint8), r.uniform(0.5, 8.0, (t, h, w)).astype(np.float32)


@pytest.mark.parametrize("drop", [None, "depth", "rgb"])
def test_ddim_prediction_with_onnxruntime_equals_torch(pred, dynamic_export, drop):
    rgb, dep = _clip()
    rgb = None if drop == "rgb" else rgb
    dep = None if drop == "depth" else dep
    ort_pred = Predictor(pred.model, backend="torch")
    ort_pred.backend = create_backend("onnxruntime", pred.model, "cpu", export_dir=dynamic_export.path)
    # Two chunks: also covers the autoregressive re-encoding of decoded frames.
    horizon = 2 * pred.chunk_frames
    ref = pred.predict(rgb, dep, horizon=horizon, steps=4, seed=7)
    out = ort_pred.predict(rgb, dep, horizon=horizon, steps=4, seed=7)
    assert out.mode == ref.mode
    assert np.abs(out.rgb.astype(int) - ref.rgb.astype(int)).max() <= 1  # uint8 rounding at most
    np.testing.assert_allclose(out.depth, ref.depth, rtol=1e-3, atol=1e-3)


def test_static_batch_export_runs_larger_batches_in_slices(pred, static_export):
    backend = create_backend("onnxruntime", pred.model, "cpu", export_dir=static_export.path)
    x = torch.rand(3, 3, pred.context_frames, *pred.config.resolution) * 2 - 1
    z = backend.encode("rgb", x)
    ref = pred.backend.encode("rgb", x)
    assert z.batch == 3
    for a, b in zip(z.planes(), ref.planes()):
        assert float((a - b).abs().max()) <= TOL


def test_predictor_exports_on_the_fly_into_the_cache(pred, dynamic_export, cache_root, monkeypatch):
    monkeypatch.setenv("SYNCVP_CACHE_DIR", str(cache_root))
    assert dynamic_export.dynamic_batch and dynamic_export.path == export_dir_for(pred.model)
    p = Predictor(pred.model, backend="onnxruntime")  # no export_dir: uses (here: reuses) the cached export
    assert p.backend_name == "onnxruntime" and p.backend.manifest.path == dynamic_export.path
    exports = list((cache_root / "onnx").iterdir())
    assert dynamic_export.path in exports and not [e for e in exports if ".tmp" in e.name]
    # Other weights or another opset get their own export directory.
    other = Predictor.from_config(micro_config(), seed=1).model
    assert export_dir_for(other) != dynamic_export.path
    assert export_dir_for(pred.model, opset=18) != dynamic_export.path


def test_export_dir_from_other_weights_is_refused(pred, static_export):
    from syncvp_core.backends.select import BackendError

    other = Predictor.from_config(micro_config(), seed=5).model
    with pytest.raises(BackendError, match="other weights"):
        create_backend("onnxruntime", other, "cpu", export_dir=static_export.path)
    wider = Predictor.from_config(micro_config(**{"unet.channels": 8}), seed=0).model
    with pytest.raises(BackendError, match="different model config"):
        create_backend("onnxruntime", wider, "cpu", export_dir=static_export.path)


def test_batched_prediction_with_onnxruntime_equals_torch(pred, dynamic_export):
    (r0, d0), (r1, d1) = _clip(1), _clip(2)
    rgb, dep = np.stack([r0, r1]), np.stack([d0, d1])
    ort_pred = Predictor(pred.model, backend="torch")
    ort_pred.backend = create_backend("onnxruntime", pred.model, "cpu", export_dir=dynamic_export.path)
    ref = pred.predict(rgb, dep, steps=3, seed=3)
    out = ort_pred.predict(rgb, dep, steps=3, seed=3)
    assert out.rgb.shape == ref.rgb.shape == (2, pred.chunk_frames, 20, 24, 3)
    assert np.abs(out.rgb.astype(int) - ref.rgb.astype(int)).max() <= 1
    np.testing.assert_allclose(out.depth, ref.depth, rtol=1e-3, atol=1e-3)
