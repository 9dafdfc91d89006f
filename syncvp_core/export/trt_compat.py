"""Static checks on an ONNX graph for what TensorRT's ONNX parser will receive.

TensorRT cannot run on the development machines, so the exporter checks here what can be checked without
it: every op is in the parser's supported set (standard ``ai.onnx`` domain, no onnxruntime contrib ops),
no ``Einsum`` (parsed with restrictions and slow, docs/design-notes.md §8.2: attention must be MatMul-Softmax-MatMul),
and every graph input/output has static dimensions (a dynamic batch dimension only where asked for).
Whether the parser accepts every attribute combination and how fast the engine is can only be checked on a
GPU (docs/deployment.md).
"""
from __future__ import annotations

from typing import Any

# Operators the TensorRT ONNX parser (onnx-tensorrt, TensorRT 10) imports. Deliberately a subset of its
# documented list: ops this model family can produce plus common neighbours. An op missing here is
# reported, and should be added only after checking the parser's operator table.
TRT_SUPPORTED_OPS = frozenset("""
Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant ConstantOfShape Conv
ConvTranspose Cos CumSum DepthToSpace Div Dropout Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GroupNormalization HardSigmoid
HardSwish Identity InstanceNormalization LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax MatMul
Max MaxPool Mean Min Mod Mul Neg Not Or Pad Pow PRelu Range Reciprocal ReduceL2 ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize Round ScatterElements ScatterND Shape Sigmoid Sign
Sin Slice Softmax Softplus SpaceToDepth Split Sqrt Squeeze Sub Sum Tanh Tile TopK Transpose Trilu Unsqueeze
Where Xor
""".split())

# Supported by the parser but not acceptable in our graphs, with the reason.
DISCOURAGED_OPS = {
    "Einsum": "TensorRT's Einsum support is restricted and slow; write attention as matmul/SDPA",
    "Loop": "data-dependent loops; the DDIM loop belongs in host code",
    "If": "data-dependent control flow; export static graphs",
    "NonZero": "data-dependent output shape",
}


def check_graph(model: Any, allow_dynamic_batch: bool = False) -> list[str]:
    """Problems TensorRT would have with ``model`` (an ``onnx.ModelProto``); empty when deployable."""
    problems: list[str] = []
    opset = {imp.domain: imp.version for imp in model.opset_import}
    if opset.get("", opset.get("ai.onnx", 0)) < 17:
        problems.append(f"opset {opset} < 17")
    for node in _all_nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"node {node.name or node.op_type}: op {node.domain}::{node.op_type} is not a "
                            "standard ONNX op (TensorRT needs a plugin for it)")
        elif node.op_type in DISCOURAGED_OPS:
            problems.append(f"node {node.name or node.op_type}: {node.op_type}: {DISCOURAGED_OPS[node.op_type]}")
        elif node.op_type not in TRT_SUPPORTED_OPS:
            problems.append(f"node {node.name or node.op_type}: op {node.op_type} is not in TensorRT's "
                            "supported set")
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            dims = v.type.tensor_type.shape.dim
            if not dims and v.type.tensor_type.elem_type:
                continue  # a scalar
            for i, d in enumerate(dims):
                static = d.HasField("dim_value") and d.dim_value > 0
                if static or (allow_dynamic_batch and i == 0):
                    continue
                label = d.dim_param or "?"
                problems.append(f"{kind} {v.name}: dimension {i} is dynamic ({label}); TensorRT engines here "
                                "are built for static shapes" + ("" if i else " (pass --dynamic-batch)"))
    return problems


def op_histogram(model: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in _all_nodes(model.graph):
        out[node.op_type] = out.get(node.op_type, 0) + 1
    return dict(sorted(out.items()))


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:  # subgraphs (If/Loop bodies), should there be any
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
