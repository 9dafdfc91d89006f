"""Layering: syncvp_core never imports ROS code (not even lazily), and training never imports evaluation."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "syncvp_core"


def _imports(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """Every module a file imports: import statements anywhere (functions included), relative ones resolved
    against ``package`` (default: the file's own), plus string arguments of importlib.import_module and
    __import__. ``from a import b`` counts as importing ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(), str(path))
    package = package or ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, mod))
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return found


def _offences(files, forbidden: tuple[str, ...], package: str | None = None) -> list[str]:
    return sorted({f"{p.name if package else p.relative_to(ROOT)}:{line} imports {mod}"
                   for p in files for line, mod in _imports(p, package)
                   if any(mod == f or mod.startswith(f + ".") for f in forbidden)})


def test_the_scanner_sees_lazy_and_relative_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..evaluation import metrics\n    import rclpy.node\n"
                     "    importlib.import_module('syncvp_ros.online_eval')\n")
    mods = {m for _, m in _imports(probe, "syncvp_core.training")}
    assert {"syncvp_core.evaluation.metrics", "rclpy.node", "syncvp_ros.online_eval"} <= mods
    assert len(_offences([probe], ("syncvp_ros", "rclpy"), "syncvp_core.training")) == 2


def test_core_never_imports_ros():
    assert _offences(sorted(CORE.rglob("*.py")), ("syncvp_ros", "rclpy", "rosidl_runtime_py", "sensor_msgs")) == []


def test_training_does_not_import_evaluation():
    # The autoencoder's perceptual loss is LPIPS-VGG in syncvp_core/training/perceptual.py, on the neutral
    # weight loader (syncvp_core/pretrained.py); evaluation's LPIPS-Alex is never a training loss.
    assert _offences(sorted((CORE / "training").rglob("*.py")), ("syncvp_core.evaluation",)) == []
