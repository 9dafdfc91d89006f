"""bench/forecast_ratios.py: ratios oriented so that < 1 means the model is better, per horizon."""
from syncvp_core.testing import load_bench

fr = load_bench("forecast_ratios")


def _stat(values):
    return {"mean": values, "mean_over_horizon": sum(values) / len(values)}


def test_ratios_say_better_below_one_for_errors_and_for_psnr():
    result = {"horizon": 2, "metrics": {
        "model/full/lpips": _stat([0.1, 0.4]), "copy_last/lpips": _stat([0.2, 0.2]),
        "model/full/psnr": _stat([20.0, 10.0]), "copy_last/psnr": _stat([10.0, 20.0])}}
    rows = {line.split("|")[3].strip(): line for line in fr.ratio_table(result).splitlines()[2:]}
    assert "| 0.50 | 2.00 |" in rows["lpips"] and rows["lpips"].endswith("| 1/2 |")
    assert "| 0.50 | 2.00 |" in rows["psnr"] and rows["psnr"].endswith("| 1/2 |")
    assert fr.ratio(None, 0.2, "lpips") is None
