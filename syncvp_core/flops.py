"""FLOP counting for the models, with torch's fused CPU attention kernels included.

``torch.utils.flop_counter`` knows the CUDA scaled-dot-product-attention kernels but not the CPU one
(``_scaled_dot_product_flash_attention_for_cpu``, torch 2.13), so on a CPU the attention of every block
would count as 0 FLOPs. :func:`flop_counter` registers it with torch's own SDPA formulas (2 FLOPs per
multiply-add, as for every other op), so CPU and GPU counts agree.
"""
from __future__ import annotations

import torch
from torch.utils import flop_counter as fc

_aten = torch.ops.aten


def _sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


_CPU_SDPA = {
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "_scaled_dot_product_flash_attention_for_cpu_backward": _sdpa_backward,
}


def flop_counter(display: bool = False) -> fc.FlopCounterMode:
    mapping = {getattr(_aten, name): fn for name, fn in _CPU_SDPA.items() if hasattr(_aten, name)}
    return fc.FlopCounterMode(display=display, custom_mapping=mapping)


def count_flops(fn, *args, **kwargs) -> tuple[int, dict[str, int]]:
    """(total FLOPs, FLOPs per aten op name) of one call of ``fn`` without autograd."""
    counter = flop_counter()
    with counter, torch.no_grad():
        fn(*args, **kwargs)
    per_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), per_op
