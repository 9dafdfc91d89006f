"""The joint SyncVP denoiser and the full model bundle (two autoencoders + denoiser).

``SyncVPDenoiser.forward(x_r, x_d, t, ctx_r, ctx_d, present) -> (eps_r, eps_d)`` is ONE denoising step
for both modalities: the graph that is exported to ONNX/TensorRT. ``present`` (B, 2) holds the
cross-modality guidance flags (rgb, depth): a missing modality's context is multiplied by 0 inside the
graph, so a caller cannot leak a dropped context into the prediction.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from ..triplane import Triplane
from .anchored import AnchoredAutoencoder
from .autoencoder import TriplaneAutoencoder
from .stca import STCA, FullCrossAttention, NoFusion
from .unet import BranchUNet


def fusion_sites(levels: list[int], n_levels: int, points: str) -> list[bool]:
    """Which UNet blocks are followed by a fusion block ("deepest" = every block at the deepest level)."""
    if points == "none":
        return [False] * len(levels)
    if points == "all":
        return [True] * len(levels)
    return [lvl == n_levels - 1 for lvl in levels]


class SyncVPDenoiser(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        lc = cfg.autoencoder.latent_channels
        self.kind = cfg.fusion.kind
        self.latent_channels = lc
        if self.kind == "concat":
            # Ablation: one UNet over both modalities stacked on channels.
            self.unet = BranchUNet(cfg, 2 * lc)
            return
        self.rgb = BranchUNet(cfg, lc)
        self.depth = BranchUNet(cfg, lc)
        sites = fusion_sites(self.rgb.levels, len(cfg.unet.channel_mult), cfg.fusion.points)
        if self.kind == "none":
            sites = [False] * len(sites)
        block = STCA if self.kind == "stca" else FullCrossAttention
        self.fusion = nn.ModuleList(
            block(ch, cfg.fusion.num_heads) if on else NoFusion()
            for on, ch in zip(sites, self.rgb.block_channels)
        )

    def forward(self, x_r: Triplane, x_d: Triplane, t: Tensor, ctx_r: Triplane, ctx_d: Triplane,
                present: Tensor) -> tuple[Triplane, Triplane]:
        keep_r = present[:, 0].reshape(-1, 1, 1, 1).to(ctx_r.xy.dtype)
        keep_d = present[:, 1].reshape(-1, 1, 1, 1).to(ctx_d.xy.dtype)
        ctx_r = ctx_r * keep_r
        ctx_d = ctx_d * keep_d
        if self.kind == "concat":
            lc = self.latent_channels
            eps = self.unet(x_r.cat(x_d), t, ctx_r.cat(ctx_d), present)
            return eps.map(lambda p: p[:, :lc]), eps.map(lambda p: p[:, lc:])
        emb_r, emb_d = self.rgb.embed(t, present), self.depth.embed(t, present)
        h_r, h_d = self.rgb.stem(x_r, ctx_r), self.depth.stem(x_d, ctx_d)
        skips_r, skips_d = [h_r], [h_d]
        for i in range(len(self.fusion)):
            h_r = self.rgb.run_block(i, h_r, skips_r, emb_r)
            h_d = self.depth.run_block(i, h_d, skips_d, emb_d)
            h_r, h_d = self.fusion[i](h_r, h_d)
            if self.rgb.kinds[i] == "in":
                skips_r.append(h_r)
                skips_d.append(h_d)
        return self.rgb.head(h_r), self.depth.head(h_d)


class SyncVPModel(nn.Module):
    """Everything a prediction needs: one autoencoder per modality and the joint denoiser.

    State-dict keys are prefixed ``ae_rgb.``, ``ae_depth.`` and ``denoiser.``; checkpoints of the
    single-modality stages hold ``denoiser.rgb.*`` or ``denoiser.depth.*`` only.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.ae_rgb = make_autoencoder(cfg, "rgb")
        self.ae_depth = make_autoencoder(cfg, "depth")
        self.denoiser = SyncVPDenoiser(cfg)

    def autoencoder(self, modality: str) -> TriplaneAutoencoder | AnchoredAutoencoder:
        return self.ae_rgb if modality == "rgb" else self.ae_depth


def make_autoencoder(cfg: ModelConfig, modality: str) -> TriplaneAutoencoder | AnchoredAutoencoder:
    """The autoencoder of one modality, of the kind ``cfg.autoencoder.decoder`` names."""
    if cfg.autoencoder.decoder == "anchored":
        return AnchoredAutoencoder(cfg.autoencoder, modality)
    return TriplaneAutoencoder(cfg.autoencoder, 3 if modality == "rgb" else 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
