"""The ``syncvp`` command line.

Sub-commands live next to the code they drive and are imported only when invoked, so ``syncvp --help``
stays fast and a missing optional dependency only affects the command that needs it.
"""
from __future__ import annotations

import importlib
import importlib.util

import click

# name -> "module:attribute". Each module owns its command; this table is the only registry.
COMMANDS: dict[str, str] = {
    "info": "syncvp_core.commands:info",
    "predict": "syncvp_core.commands:predict",
    "sim": "syncvp_core.data.cli:sim",
    "data": "syncvp_core.data.cli:data",
    "train": "syncvp_core.training.cli:train",
    "cache-latents": "syncvp_core.training.cli:cache_latents",
    "make-mix": "syncvp_core.training.cli:make_mix",
    "pack-data": "syncvp_core.training.cli:pack_data",
    "export": "syncvp_core.export.cli:export",
    "build-engine": "syncvp_core.export.cli:build_engine",
    "eval-bag": "syncvp_core.evaluation.cli:eval_bag",
    "eval-dataset": "syncvp_core.evaluation.cli:eval_dataset",
    "eval-heldout": "syncvp_core.evaluation.cli:eval_heldout",
    "demo": "syncvp_core.evaluation.cli:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name].split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)


def _available(name: str) -> bool:
    module_name = COMMANDS[name].split(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:  # the command's package is not part of this build
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="syncvp_ros")
def main() -> None:
    """syncvp: forecast future colour and depth frames from an RGB-D camera (SyncVP)."""


if __name__ == "__main__":
    main()
