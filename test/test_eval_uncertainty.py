"""Uncertainty scoring (syncvp_core.evaluation.uncertainty): calibration, sparsification, AUSE."""
import numpy as np
import pytest

from syncvp_core.evaluation.uncertainty import (
    REMOVAL_FRACTIONS,
    UncertaintyStats,
    ause,
    markdown_section,
    plot_sparsification,
    sparsification_curve,
)


def _gaussian_forecast(k=3, h=40, w=50, seed=0, lie=1.0):
    """Truth drawn from N(mean, std): a perfectly calibrated forecast when lie == 1."""
    r = np.random.default_rng(seed)
    mean = r.uniform(4, 8, (k, h, w)).astype(np.float32)
    std = r.uniform(0.05, 0.8, (k, h, w)).astype(np.float32)
    true = mean + std * r.standard_normal((k, h, w)).astype(np.float32)
    return true, mean, (std * lie).astype(np.float32)


def test_calibrated_gaussian_hits_68_and_95_percent_and_small_ause():
    true, mean, std = _gaussian_forecast()
    st = UncertaintyStats(horizon=3)
    st.add(true, mean, std)
    s = st.summary()
    assert s["within_1std"] == pytest.approx(0.6827, abs=0.02)
    assert s["within_2std"] == pytest.approx(0.9545, abs=0.01)
    for step in s["per_horizon"]:
        assert step["pixels"] == 40 * 50
        assert step["within_1std"] == pytest.approx(0.6827, abs=0.03)
    # An informative std ranks errors well: removing uncertain pixels lowers the error steadily.
    curve = np.array(s["sparsification_mae_m"])
    assert (np.diff(curve) < 0).all()
    oracle = np.array(s["oracle_mae_m"])
    assert (curve >= oracle - 1e-9).all()
    # Against the same errors ranked by a random std, the informative one has a much smaller AUSE.
    shuffled = UncertaintyStats(horizon=3)
    shuffled.add(true, mean, np.random.default_rng(9).permutation(std.ravel()).reshape(std.shape))
    assert s["ause_m"] < 0.5 * shuffled.summary()["ause_m"]


def test_overconfident_spread_is_reported_as_such():
    true, mean, std = _gaussian_forecast(lie=0.3)
    st = UncertaintyStats(horizon=3)
    st.add(true, mean, std)
    s = st.summary()
    assert s["within_1std"] < 0.3 and s["within_2std"] < 0.5


def test_sparsification_and_ause_on_hand_made_errors():
    err = np.array([4.0, 3.0, 2.0, 1.0])
    fr = np.array([0.0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(sparsification_curve(err, err, fr), [2.5, 2.0, 1.5, 1.0])
    curve, oracle, area = ause(err, -err, fr)  # the std ranks errors exactly backwards
    np.testing.assert_allclose(curve, [2.5, 3.0, 3.5, 4.0])
    assert area == pytest.approx(0.25 * (0 + 2 * 1 + 2 * 2 + 3) / 2)
    _, _, perfect = ause(err, err * 10, fr)
    assert perfect == 0.0


def test_invalid_truth_is_ignored_and_pixels_subsampled_for_ranking():
    true, mean, std = _gaussian_forecast(k=2)
    true[0, :10] = np.nan
    true[1, :, :5] = 0.0
    st = UncertaintyStats(horizon=4, max_pixels_per_frame=500)
    st.add(true, mean, std)
    s = st.summary()
    assert [x["pixels"] for x in s["per_horizon"]] == [30 * 50, 40 * 45, 0, 0]
    assert s["per_horizon"][2]["within_1std"] is None and s["per_horizon"][2]["ause_m"] is None
    assert s["pixels_ranked"] == 1000
    with pytest.raises(ValueError, match="must be equal"):
        st.add(true, mean[:1], std)


def test_plot_and_markdown(tmp_path):
    true, mean, std = _gaussian_forecast()
    st = UncertaintyStats(horizon=3)
    st.add(true, mean, std)
    s = st.summary()
    png = tmp_path / "sparsification.png"
    assert plot_sparsification(s, png) and png.stat().st_size > 1000
    md = "\n".join(markdown_section(s, 4, png, tmp_path))
    assert "| h3 |" in md and "![sparsification](sparsification.png)" in md and "68.3 %" in md
    assert len(s["sparsification_mae_m"]) == len(REMOVAL_FRACTIONS)
    assert not plot_sparsification(UncertaintyStats(horizon=2).summary(), tmp_path / "none.png")
