"""The graphs TensorRT would receive, and the engine build against a stand-in ``tensorrt`` module.

TensorRT cannot be installed here. Checked: every op of every exported graph is in TensorRT's supported set,
no Einsum, static shapes (a dynamic batch only when asked for); the checker itself catches those problems;
the builder code sets the precision flags, keeps softmax/normalisation layers in fp32 and gives every
network input a profile shape from the manifest.
"""
import types

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from syncvp_core.export.engine_cache import DeviceInfo, EngineCache  # noqa: E402
from syncvp_core.export.graphs import GRAPH_NAMES  # noqa: E402
from syncvp_core.export.onnx_cache import ensure_export  # noqa: E402
from syncvp_core.export.trt_build import (  # noqa: E402
    EngineBuildError,
    build_serialized_engine,
    engine_for,
    profile_shapes,
)
from syncvp_core.export.trt_compat import TRT_SUPPORTED_OPS, check_graph, op_histogram  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.testing import micro_config  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return Predictor.from_config(micro_config(), seed=0).model


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "syncvp-export-cache"  # shared with test_export_parity
    return {"static": ensure_export(model, root, dynamic_batch=False), "dynamic": ensure_export(model, root)}


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_exported_graphs_are_what_tensorrt_supports(exports, kind):
    m = exports[kind]
    for g in GRAPH_NAMES:
        proto = onnx.load(str(m.onnx_path(g)))
        ops = set(op_histogram(proto))
        assert "Einsum" not in ops, g
        assert ops <= TRT_SUPPORTED_OPS, f"{g}: {ops - TRT_SUPPORTED_OPS}"
        assert check_graph(proto, allow_dynamic_batch=(kind == "dynamic")) == [], g
        for v in list(proto.graph.input) + list(proto.graph.output):
            dims = v.type.tensor_type.shape.dim
            assert all(d.dim_value > 0 for d in dims[1:]), f"{g}/{v.name}: non-batch dims must be static"
            assert (dims[0].dim_param == "batch") == (kind == "dynamic"), f"{g}/{v.name}"
        assert max(i.version for i in proto.opset_import if i.domain in ("", "ai.onnx")) >= 17


def test_denoiser_attention_is_matmul_softmax_matmul(exports):
    hist = op_histogram(onnx.load(str(exports["static"].onnx_path("denoiser_step"))))
    assert hist["MatMul"] >= 2 * hist["Softmax"] > 0


def _model(nodes, inputs, outputs, opset=17, domain_imports=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    imports = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domain_imports]]
    return helper.make_model(graph, opset_imports=imports)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_checker_flags_einsum_contrib_ops_dynamic_dims_and_old_opsets():
    good = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 4])], [_vi("y", [1, 4])])
    assert check_graph(good) == []
    einsum = _model([helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")],
                    [_vi("x", [1, 4])], [_vi("y", [1, 4])])
    assert any("Einsum" in p for p in check_graph(einsum))
    contrib = _model([helper.make_node("FusedGemm", ["x", "x"], ["y"], domain="com.microsoft")],
                     [_vi("x", [1, 4])], [_vi("y", [1, 4])], domain_imports=("com.microsoft",))
    assert any("com.microsoft" in p for p in check_graph(contrib))
    unknown = _model([helper.make_node("STFT", ["x", "x"], ["y"])], [_vi("x", [1, 4])], [_vi("y", [1, 4])])
    assert any("supported set" in p for p in check_graph(unknown))
    dyn = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["batch", "n"])], [_vi("y", ["batch", "n"])])
    probs = check_graph(dyn, allow_dynamic_batch=True)
    assert len(probs) == 2 and all("dimension 1" in p for p in probs)
    assert len(check_graph(dyn)) == 4
    old = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1])], [_vi("y", [1])], opset=13)
    assert any("opset" in p for p in check_graph(old))


def test_profile_shapes_static_and_dynamic(exports, model):
    st = profile_shapes(exports["static"], "encoder_rgb")
    c = model.cfg
    s = (1, 3, c.context_frames, *c.resolution)
    assert st == {"frames": (s, s, s)}
    dy = profile_shapes(exports["dynamic"], "denoiser_step", opt_batch=2, max_batch=8)
    assert len(dy) == 14 and dy["t"] == ((1,), (2,), (8,)) and dy["present"] == ((1, 2), (2, 2), (8, 2))
    with pytest.raises(ValueError):
        profile_shapes(exports["dynamic"], "denoiser_step", opt_batch=9, max_batch=8)


# -- a stand-in for the tensorrt module: records what the builder code asks for -------------------------------


def fake_tensorrt(parse_ok=True, build_ok=True):
    rec = types.SimpleNamespace(flags=[], profile={}, layers=[], pool=None, parsed=None, network_flags=None)
    LayerType = types.SimpleNamespace(SOFTMAX="SOFTMAX", NORMALIZATION="NORMALIZATION", REDUCE="REDUCE",
                                      OTHER="OTHER")
    kinds = {"Softmax": "SOFTMAX", "InstanceNormalization": "NORMALIZATION", "LayerNormalization": "NORMALIZATION",
             "ReduceSum": "REDUCE"}

    class Layer:
        def __init__(self, op):
            self.type = kinds.get(op, "OTHER")
            self.precision = None
            rec.layers.append(self)

    class Network:
        def __init__(self):
            self.inputs, self.layers = [], []

        num_inputs = property(lambda self: len(self.inputs))
        num_layers = property(lambda self: len(self.layers))

        def get_input(self, i):
            return types.SimpleNamespace(name=self.inputs[i])

        def get_layer(self, i):
            return self.layers[i]

    class Parser:
        def __init__(self, network, logger):
            self.network = network
            self.num_errors = 0 if parse_ok else 1

        def parse_from_file(self, path):
            rec.parsed = path
            proto = onnx.load(path)
            self.network.inputs = [v.name for v in proto.graph.input]
            self.network.layers = [Layer(n.op_type) for n in proto.graph.node]
            return parse_ok

        def get_error(self, i):
            return "In node 3 (importFoo): UNSUPPORTED_NODE"

    class Config:
        def set_flag(self, f):
            rec.flags.append(f)

        def set_memory_pool_limit(self, pool, size):
            rec.pool = (pool, size)

        def add_optimization_profile(self, p):
            rec.profile = p.shapes

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, mn, opt, mx):
            self.shapes[name] = (tuple(mn), tuple(opt), tuple(mx))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            rec.network_flags = flags
            return Network()

        create_builder_config = staticmethod(Config)
        create_optimization_profile = staticmethod(Profile)

        def build_serialized_network(self, network, config):
            return b"ENGINE:" + str(sorted(rec.profile)).encode() if build_ok else None

    trt = types.SimpleNamespace(
        __version__="10.3.0", Logger=types.SimpleNamespace, Builder=Builder, OnnxParser=Parser, LayerType=LayerType,
        BuilderFlag=types.SimpleNamespace(FP16="FP16", BF16="BF16", PREFER_PRECISION_CONSTRAINTS="PREFER"),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"), float32="float32",
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0))
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    return trt, rec


@pytest.mark.parametrize("precision,flag", [("fp16", "FP16"), ("bf16", "BF16"), ("fp32", None)])
def test_builder_sets_precision_profile_and_fp32_sensitive_layers(exports, precision, flag):
    m = exports["dynamic"]
    trt, rec = fake_tensorrt()
    shapes = profile_shapes(m, "denoiser_step", 1, 4)
    blob = build_serialized_engine(m.onnx_path("denoiser_step"), precision, shapes, workspace_bytes=1 << 30, trt=trt)
    assert blob.startswith(b"ENGINE:") and rec.network_flags == 0  # TensorRT 10: explicit batch is implicit
    assert rec.profile == shapes  # every network input has (min, opt, max)
    assert rec.pool == ("WORKSPACE", 1 << 30)
    sensitive = [lay for lay in rec.layers if lay.type != "OTHER"]
    assert sensitive
    if flag:
        assert flag in rec.flags and "PREFER" in rec.flags
        assert all(lay.precision == "float32" for lay in sensitive)
    else:
        assert rec.flags == [] and all(lay.precision is None for lay in sensitive)


def test_parse_and_build_failures_raise_clear_errors(exports):
    m = exports["static"]
    shapes = profile_shapes(m, "encoder_rgb")
    trt, _ = fake_tensorrt(parse_ok=False)
    with pytest.raises(EngineBuildError, match="(?s)could not parse.*UNSUPPORTED_NODE"):
        build_serialized_engine(m.onnx_path("encoder_rgb"), "fp16", shapes, trt=trt)
    trt, _ = fake_tensorrt(build_ok=False)
    with pytest.raises(EngineBuildError, match="failed to build"):
        build_serialized_engine(m.onnx_path("encoder_rgb"), "fp16", shapes, trt=trt)


def test_engine_for_builds_once_per_key_through_the_cache(exports, tmp_path):
    m = exports["static"]
    trt, rec = fake_tensorrt()
    built = []
    cache = EngineCache(tmp_path, lambda blob: blob if blob.startswith(b"ENGINE:") else None)
    real_build = cache.get_or_build

    def counting(graph, key, build):
        return real_build(graph, key, lambda: built.append(graph) or build())

    cache.get_or_build = counting
    dev = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0")
    for _ in range(2):
        for g in GRAPH_NAMES:
            assert engine_for(m, g, cache, "fp16", dev, trt=trt).startswith(b"ENGINE:")
    assert built == list(GRAPH_NAMES)  # second round: all from the cache
    engine_for(m, "encoder_rgb", cache, "fp16", DeviceInfo("NVIDIA L4", "8.9"), trt=trt)
    assert built[-1] == "encoder_rgb" and len(built) == len(GRAPH_NAMES) + 1  # another GPU: rebuilt
