"""Where a model comes from, in one place: the shipped default, ``random:<config>`` or a checkpoint path.

The same string works for the node's ``checkpoint`` parameter, the command line and online evaluation:

* ``None`` or ``""``: the shipped default checkpoint;
* ``random:<config>`` (a config name such as ``tiny`` or a YAML path): a randomly initialised model with
  seed 0 (tests, benchmarks, pipeline checks; its predictions are noise);
* anything else: a checkpoint file (safetensors).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

RANDOM = "random:"


@dataclass(frozen=True)
class ModelSource:
    checkpoint: str | None = None  # a path; None = the shipped default (unless random_config)
    random_config: str | None = None  # config name or YAML path of a randomly initialised model

    @classmethod
    def parse(cls, text: str | None) -> ModelSource:
        if text and text.startswith(RANDOM):
            return cls(random_config=text[len(RANDOM):])
        return cls(checkpoint=text or None)

    @classmethod
    def from_options(cls, checkpoint: str | None, random_config: str | None) -> ModelSource:
        """From a command's ``--checkpoint`` and ``--random-init``/``--config`` options (exclusive)."""
        if checkpoint and random_config:
            raise ValueError("--checkpoint and a random-init config are exclusive")
        return cls(random_config=random_config) if random_config else cls.parse(checkpoint)

    @property
    def random(self) -> bool:
        return self.random_config is not None

    def __str__(self) -> str:
        if self.random:
            return f"{RANDOM}{self.random_config}"
        return self.checkpoint or "<shipped default>"

    def path(self) -> Path:
        from .checkpoint import DEFAULT_CHECKPOINT

        return Path(self.checkpoint) if self.checkpoint else DEFAULT_CHECKPOINT

    def config(self) -> Any:
        """The model config, without building the model (reads only the checkpoint's metadata)."""
        from .checkpoint import config_from_meta, load_checkpoint
        from .config import load_model_config

        if self.random:
            return load_model_config(self.random_config)
        _, meta = load_checkpoint(self.path())
        return config_from_meta(meta, self.path())

    def open(self, device: str = "cpu", backend: str = "torch", backend_options: dict | None = None) -> Any:
        """A :class:`~syncvp_core.predictor.Predictor` for this source."""
        from .predictor import Predictor

        if self.random:
            return Predictor.from_config(self.random_config, seed=0, device=device, backend=backend,
                                         backend_options=backend_options)
        return Predictor.from_checkpoint(self.checkpoint, device=device, backend=backend,
                                         backend_options=backend_options)


def open_predictor(source: str | None, device: str = "cpu", backend: str = "torch") -> Any:
    """``ModelSource.parse(source).open(device, backend)``."""
    return ModelSource.parse(source).open(device, backend)
