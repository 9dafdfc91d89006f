"""Resumable training state in safetensors + JSON (no pickle): weights, EMA, optimiser moments, RNG, position.

File ``<stage_dir>/state.safetensors`` holds tensors under the prefixes ``model.``, ``ema.``, ``optim.<i>.``
(moments of the i-th parameter in ``named_parameters`` order) and ``rng.``; its metadata (and the JSON
sidecar) holds step, sampler position, optimiser hyper-parameters, config, data fingerprint and code version.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint


class EMA:
    """Exponential moving average of a module's floating-point state, warm-up ``min(d, (1+n)/(10+n))``."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        for k, v in module.state_dict().items():
            if k in frozen:
                continue  # frozen weights stay bit-identical (d*x + (1-d)*x may round)
            if v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    p = min(1.0, (step - warmup) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def optimizer_tensors(opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> dict[str, torch.Tensor]:
    index = {id(p): i for i, p in enumerate(params)}
    out = {}
    for p, st in opt.state.items():
        i = index[id(p)]
        for name, v in st.items():
            out[f"optim.{i}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, params: list[nn.Parameter],
                           tensors: dict[str, torch.Tensor], path) -> None:
    per: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            per.setdefault(int(i), {})[name] = v
    if per and max(per) >= len(params):
        raise CheckpointError(f"{path}: optimiser state for {max(per) + 1} parameters, model has {len(params)}")
    for i, st in per.items():
        p = params[i]
        for name, v in st.items():
            if name != "step" and v.shape != p.shape:
                raise CheckpointError(f"{path}: optimiser {name} of parameter {i} has shape {tuple(v.shape)}, "
                                      f"parameter is {tuple(p.shape)}")
        opt.state[p] = {name: (v.to(p.device) if name != "step" else v.float()) for name, v in st.items()}


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def save_state(path, module: nn.Module, ema: EMA | None, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    params = trainable(module)
    tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state().items()})
    tensors.update(optimizer_tensors(opt, params))
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**meta, "ema_updates": ema.updates if ema is not None else 0, "kind": "train_state"}
    save_checkpoint(path, tensors, meta)


def load_state(path, module: nn.Module, ema: EMA | None, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore everything :func:`save_state` wrote; a checkpoint that does not fit raises CheckpointError
    before anything is modified."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "train_state":
        raise CheckpointError(f"{path}: not a training-state checkpoint (kind={meta.get('kind')!r})")
    # Validate on a scratch copy first so that a bad file leaves the live module untouched.
    scratch = {k: v.clone() for k, v in module.state_dict().items()}
    probe = _StateHolder(scratch)
    load_into(probe, tensors, path, prefix="model.")
    load_into(module, tensors, path, prefix="model.")
    if ema is not None:
        ema_t = {k[len("ema."):]: v.float() for k, v in tensors.items() if k.startswith("ema.")}
        if set(ema_t) != set(ema.shadow):
            raise CheckpointError(f"{path}: EMA keys do not match the model")
        ema.shadow = ema_t
        ema.updates = int(meta.get("ema_updates", 0))
    load_optimizer_tensors(opt, trainable(module), tensors, path)
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return meta


class _StateHolder(nn.Module):
    """A module whose state_dict is a given dict: lets load_into validate keys/shapes without side effects."""

    def __init__(self, sd: dict[str, torch.Tensor]):
        super().__init__()
        self._sd = sd

    def state_dict(self, *a, **k):  # noqa: D102
        return self._sd

    def load_state_dict(self, sd, strict=True, assign=False):  # noqa: D102
        for k, v in sd.items():
            self._sd[k].copy_(v)
