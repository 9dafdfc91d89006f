"""STCA and full cross-attention against naive references written from the formulas."""
import math

import pytest
import torch

from syncvp_core.models.stca import STCA, FullCrossAttention, shared_cross_attention
from syncvp_core.triplane import Triplane


def naive_pair(q_r, q_d, v_r, v_d, heads):
    """A = Q_R Q_D^T / sqrt(d) per head; RGB <- softmax(A) V_D; depth <- softmax(A^T) V_R (einsum over tokens)."""
    b, n, c = q_r.shape
    d = c // heads
    sp = lambda x: x.reshape(b, x.shape[1], heads, d)  # noqa: E731
    A = torch.einsum("bihd,bjhd->bhij", sp(q_r), sp(q_d)) / math.sqrt(d)
    out_r = torch.einsum("bhij,bjhd->bihd", A.softmax(-1), sp(v_d)).reshape(b, n, c)
    At = A.transpose(-1, -2)
    out_d = torch.einsum("bhji,bihd->bjhd", At.softmax(-1), sp(v_r)).reshape(b, q_d.shape[1], c)
    return out_r, out_d


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_kernel_matches_formula_both_directions(heads):
    g = torch.Generator().manual_seed(0)
    q_r, q_d, v_r, v_d = (torch.randn(2, 10, 8, generator=g) for _ in range(4))
    o_r, o_d = shared_cross_attention(q_r, q_d, v_r, v_d, heads)
    n_r, n_d = naive_pair(q_r, q_d, v_r, v_d, heads)
    torch.testing.assert_close(o_r, n_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o_d, n_d, atol=1e-5, rtol=1e-5)


def test_depth_direction_uses_transpose_not_its_own_matrix():
    # Swapping the roles of the modalities must swap the outputs: the matrix is shared.
    g = torch.Generator().manual_seed(1)
    q_r, q_d, v_r, v_d = (torch.randn(1, 6, 4, generator=g) for _ in range(4))
    o_r, o_d = shared_cross_attention(q_r, q_d, v_r, v_d, 2)
    s_r, s_d = shared_cross_attention(q_d, q_r, v_d, v_r, 2)
    torch.testing.assert_close(o_r, s_d)
    torch.testing.assert_close(o_d, s_r)


def _random_triplane(g, b=2, c=8, t=4, h=6, w=5):
    return Triplane(torch.randn(b, c, h, w, generator=g), torch.randn(b, c, t, w, generator=g),
                    torch.randn(b, c, t, h, generator=g))


def _randomise(block):
    torch.manual_seed(3)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)


def _reference_block(block, h_r: Triplane, h_d: Triplane, per_plane: bool):
    """Token attention per plane (or over all planes concatenated) computed with the naive kernel."""
    def tok(x, norm):
        return norm(x).flatten(2).transpose(1, 2)

    planes_r, planes_d = list(h_r.planes()), list(h_d.planes())
    groups = [[0], [1], [2]] if per_plane else [[0, 1, 2]]
    out_r, out_d = [None] * 3, [None] * 3
    for grp in groups:
        t_r = torch.cat([tok(planes_r[i], block.norm_r) for i in grp], 1)
        t_d = torch.cat([tok(planes_d[i], block.norm_d) for i in grp], 1)
        a_r, a_d = naive_pair(block.q_r(t_r), block.q_d(t_d), block.v_r(t_r), block.v_d(t_d), block.heads)
        u_r, u_d = block.out_r(a_r), block.out_d(a_d)
        start = 0
        for i in grp:
            shp = planes_r[i].shape
            n = shp[2] * shp[3]
            out_r[i] = planes_r[i] + u_r[:, start:start + n].transpose(1, 2).reshape(shp)
            out_d[i] = planes_d[i] + u_d[:, start:start + n].transpose(1, 2).reshape(shp)
            start += n
    return Triplane(*out_r), Triplane(*out_d)


@pytest.mark.parametrize("cls,per_plane", [(STCA, True), (FullCrossAttention, False)])
def test_blocks_match_token_attention_reference(cls, per_plane):
    g = torch.Generator().manual_seed(2)
    block = cls(8, 2)
    _randomise(block)
    h_r, h_d = _random_triplane(g), _random_triplane(g)
    got_r, got_d = block(h_r, h_d)
    ref_r, ref_d = _reference_block(block, h_r, h_d, per_plane)
    for a, b in zip(got_r.planes() + got_d.planes(), ref_r.planes() + ref_d.planes()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_stca_attends_over_positions_not_channels():
    # Token attention is equivariant to permuting positions within a plane (the official .view is not).
    g = torch.Generator().manual_seed(4)
    block = STCA(8, 2)
    _randomise(block)
    h_r, h_d = _random_triplane(g), _random_triplane(g)
    perm = torch.randperm(6 * 5, generator=g)

    def permute_xy(tp):
        xy = tp.xy.flatten(2)[:, :, perm].reshape(tp.xy.shape)
        return Triplane(xy, tp.xt, tp.yt)

    out_r, _ = block(permute_xy(h_r), permute_xy(h_d))
    ref_r, _ = block(h_r, h_d)
    torch.testing.assert_close(out_r.xy, permute_xy(ref_r).xy, atol=1e-5, rtol=1e-5)


def test_zero_initialised_output_is_identity():
    g = torch.Generator().manual_seed(5)
    h_r, h_d = _random_triplane(g), _random_triplane(g)
    for cls in (STCA, FullCrossAttention):
        out_r, out_d = cls(8, 2)(h_r, h_d)
        for a, b in zip(out_r.planes() + out_d.planes(), h_r.planes() + h_d.planes()):
            assert torch.equal(a, b)


@pytest.mark.parametrize("t,h,w,runs", [
    (4, 6, 5, [(0, 1), (1, 1), (2, 1)]),  # H != W: three plane sizes, three attention calls
    (4, 8, 8, [(0, 1), (1, 2)]),  # square latent: xt and yt batched together (the paper's fusion levels)
    (6, 6, 6, [(0, 3)]),  # T = H = W: all three planes in one call
])
def test_batched_stca_equals_per_plane_reference(t, h, w, runs):
    # The batched planes must not mix: each plane attends only within itself, exactly as a per-plane loop.
    from syncvp_core.models.stca import equal_size_runs

    g = torch.Generator().manual_seed(6)
    block = STCA(8, 2)
    _randomise(block)
    h_r, h_d = _random_triplane(g, b=3, t=t, h=h, w=w), _random_triplane(g, b=3, t=t, h=h, w=w)
    assert equal_size_runs([p.shape[-2] * p.shape[-1] for p in h_r.planes()]) == runs
    got_r, got_d = block(h_r, h_d)
    ref_r, ref_d = _reference_block(block, h_r, h_d, per_plane=True)
    for a, b in zip(got_r.planes() + got_d.planes(), ref_r.planes() + ref_d.planes()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # Sanity of the reference itself: attending over all planes at once gives something else.
    full_r, _ = _reference_block(block, h_r, h_d, per_plane=False)
    assert not torch.allclose(full_r.xy, ref_r.xy, atol=1e-3)
