"""Lab-tier fixtures shared by several files.

``env`` is the fleet of test_fleet.py and test_fleet_api.py (tests/lab/fleet_env.py).
Starting it takes seconds, so it is started for the first test that asks for it and
stopped after the last of the tests that follow one another asking for it (the two
files sort next to each other): one fleet for both files, as a module-scoped fixture
gave one file, and not left running through the rest of the session as a
session-scoped one would be.
"""

from __future__ import annotations

import sys

import pytest

from tests.lab.fleet_env import Env, start_env, stop_env

# The running fleet ("env"), or why it did not start ("error"): a fleet that failed to
# start is not started again for each test that follows.
_fleet: dict[str, object] = {}


@pytest.fixture
def env(request: pytest.FixtureRequest, ovs: None,
        tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The shared fleet (see the module docstring); the agents' logs are attached to a
    failing test's report."""
    if "error" in _fleet:
        pytest.fail(f"the shared fleet did not start: {_fleet['error']!r}", pytrace=False)
    if "env" not in _fleet:
        try:
            _fleet["env"] = start_env(tmp_path_factory.mktemp("fleet"))
        except Exception as e:
            _fleet["error"] = e
            raise
    e = _fleet["env"]
    assert isinstance(e, Env)
    request.node._vgw_controllers = [a.ctl for a in e.fleet.agents]
    return e


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop the shared fleet after the last of the consecutive tests using it (after
    that test's own teardown, even if it failed); a problem stopping it fails that
    test's teardown."""
    try:
        yield
    finally:
        if nextitem is None or "env" not in getattr(nextitem, "fixturenames", ()):
            _fleet.pop("error", None)
            problems = _stop_fleet()
            assert not problems, problems


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A session that ends early (Ctrl-C, or -x before the fleet's last test) stops the
    fleet here."""
    for problem in _stop_fleet():
        print(f"tests/lab/conftest.py: stopping the shared fleet: {problem}", file=sys.stderr)


def _stop_fleet() -> list[str]:
    e = _fleet.pop("env", None)
    return stop_env(e) if isinstance(e, Env) else []
