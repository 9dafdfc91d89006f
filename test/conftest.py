"""Shared fixtures. Tests run on CPU with tiny shapes; torch uses one thread so parallel jobs don't thrash."""
from __future__ import annotations

import os

import pytest
import torch

from syncvp_core.testing import micro_config

torch.set_num_threads(int(os.environ.get("SYNCVP_TEST_THREADS", "1")))


@pytest.fixture
def micro_cfg():
    return micro_config()


@pytest.fixture
def harness():
    """``harness(params={...}, **Harness kwargs)``: the ROS node in-process with a driver node, closed at
    the end (syncvp_ros.testing.Harness; model settings from node_support.FAST)."""
    from node_support import FAST

    from syncvp_ros.testing import Harness

    made = []
    domain = int(os.environ["ROS_DOMAIN_ID"]) if os.environ.get("ROS_DOMAIN_ID") else None

    def make(**overrides):
        overrides.setdefault("domain_id", domain)  # the caller's domain, not a random one shared by chance
        h = Harness({**FAST, **overrides.pop("params", {})}, **overrides)
        made.append(h)
        if h.active and overrides.get("record", True):
            assert h.wait_for_subscribers()
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture(scope="session")
def micro_yaml(tmp_path_factory):
    """The micro config as a YAML file (for --random-init / --config options of the commands)."""
    import json

    import yaml

    path = tmp_path_factory.mktemp("cfg") / "micro.yaml"
    path.write_text(yaml.safe_dump(json.loads(micro_config().to_json())))
    return path
