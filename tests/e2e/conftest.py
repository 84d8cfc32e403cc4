"""Fake native upstreams for the end-to-end tests: one server per test module, started on first use."""

import pytest

from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini


@pytest.fixture(scope="module")
def anthropic_server():
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gemini_server():
    server = FakeGemini().start()
    yield server
    server.stop()
