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
