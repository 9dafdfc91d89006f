"""Launch tests: where the ROS 2 launch tools are missing they skip (named in the summary); where they are
required (``SYNCVP_LAUNCH_TESTS_REQUIRED=1``, set by ``test/launch/run.sh`` for CI) a skip fails the run."""
from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("SYNCVP_LAUNCH_TESTS_REQUIRED", "") == "1"


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if REQUIRED and skipped:
        names = ", ".join(r.nodeid for r in skipped)
        reporter.write_line(f"SYNCVP_LAUNCH_TESTS_REQUIRED=1 but skipped: {names}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
