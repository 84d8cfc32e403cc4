import dataclasses
import os
import threading
import time

import pytest
import redis
import uvicorn
from django.conf import settings

from tests.fake_server import wait_for_port
from tests.fake_upstream import FakeUpstream
from tests.pgvector_server import pg_server  # noqa: F401  (a fixture: PostgreSQL with pgvector, started on demand)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On SQLite the test database is a file (not :memory:), one per test process, so that a Celery
    worker in a subprocess shares it. A dead run's leftover files (WAL of open connections) go first."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        for stale in settings.VAR_DIR.glob("test-*.sqlite3*"):
            pid = stale.name[5:].split(".", 1)[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                stale.unlink(missing_ok=True)
        db.setdefault("TEST", {})["NAME"] = str(settings.VAR_DIR / f"test-{os.getpid()}.sqlite3")


@pytest.fixture(scope="session")
def redis_sync():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _clean_state(redis_sync, tmp_path, settings):
    """Each test starts with an empty usage stream and spool, and caches that know nothing."""
    from gomodel.gateway.runtime import invalidate_local

    # One stream per test process, so that concurrent runs sharing a Redis cannot see each other.
    settings.USAGE_STREAM = f"gomodel:test:{os.getpid()}:usage"
    redis_sync.delete(settings.USAGE_STREAM)
    for name in redis_sync.scan_iter(match=settings.USAGE_STREAM + ":budget:*", count=1000):
        redis_sync.delete(name)  # budget counters: ids restart with each test database
    settings.USAGE_SPOOL_PATH = tmp_path / "spool.jsonl"
    # Rate-limit counters of their own per test (ids restart in every test's database); they expire in a minute.
    settings.LIMITS_PREFIX = f"gomodel:test:{os.getpid()}:{time.monotonic_ns()}:rl"
    # A response cache of its own per test too (tenant ids restart, so an old entry would answer a new tenant).
    settings.RESPONSE_CACHE_PREFIX = f"gomodel:test:{os.getpid()}:{time.monotonic_ns()}:cache"
    # Provider key cool-downs too (provider ids restart as well).
    settings.KEY_COOLDOWN_PREFIX = f"gomodel:test:{os.getpid()}:{time.monotonic_ns()}:keycool"
    invalidate_local("all")
    yield
    invalidate_local("all")
    _leave_no_spool(settings.USAGE_SPOOL_PATH)


def _leave_no_spool(path):
    """The session's gateway replays the spool every 5 s into the stream named then: a spool a test leaves
    behind (or a replay still running) would land in the next test's stream. Wait for any replay, remove it."""
    import fcntl

    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for leftover in path.parent.glob(path.name + "*"):
            if not leftover.name.endswith(".lock"):
                leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def upstream_server():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server):
    upstream_server.requests.clear()
    upstream_server.flaky_failures = 0
    upstream_server.retry_after = b"0"
    upstream_server.key_answers.clear()
    upstream_server.reset_content()
    return upstream_server


@pytest.fixture(scope="session")
def gateway_server():
    from gomodel.asgi import application

    config = uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    port = wait_for_port(server)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def gateway(gateway_server, transactional_db):
    """The base URL of a running gateway (uvicorn in a thread, sharing this test's database). Stored
    responses are written in the background after the answer: they land before the database is flushed."""
    yield gateway_server
    from gomodel.gateway import stored_responses

    deadline = time.monotonic() + 10
    while stored_responses._writes and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def make_provider(transactional_db):
    from providers.models import ProviderConfig

    def make(name="openai", provider_type="openai", base_url="", api_key="sk-upstream-secret", models=""):
        config = ProviderConfig(name=name, provider_type=provider_type, base_url=base_url, model_list=models)
        config.set_api_key(api_key)
        config.save()
        return config

    return make


@pytest.fixture
def provider(make_provider, upstream):
    return make_provider(base_url=upstream.base_url)


@pytest.fixture
def tenant_key(transactional_db):
    """(tenant, key row, plaintext) for a fresh tenant."""
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("acme", "Acme")
    key, plaintext = do_create_api_key(tenant, name="ci")
    return tenant, key, plaintext


@pytest.fixture
def usage_events(redis_sync, settings):
    """Reads back what the gateway appended to the usage stream, decoded as the drain decodes it (as
    dicts of the StreamEvent's fields)."""
    from accounting.usage import events as usage_event

    def read_now(request_id):
        events = [dataclasses.asdict(usage_event.decode(fields[b"e"]))
                  for _, fields in redis_sync.xrange(settings.USAGE_STREAM)]
        return [e for e in events if request_id is None or e["request_id"] == request_id]

    def read(request_id=None, expect=1, timeout=3.0):
        """Events are appended just after the response is sent: wait for `expect` of them, then
        a little longer, so that a duplicate would show up too."""
        deadline = time.monotonic() + timeout
        while len(read_now(request_id)) < expect and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return read_now(request_id)

    return read


@pytest.fixture(scope="session", autouse=True)
def _own_invalidation_channel():
    """One cache-invalidation channel per test process (as for the usage stream): another test run sharing
    this Redis must not clear this run's key cache in the middle of a test. Set before the gateway starts
    (it subscribes once), and in the environment for any subprocess."""
    channel = f"gomodel:test:{os.getpid()}:invalidate"
    os.environ["INVALIDATION_CHANNEL"] = channel
    settings.INVALIDATION_CHANNEL = channel
    yield channel


@pytest.fixture(scope="session")
def _gateway_db_connections(django_db_setup):
    """Closes the gateway thread's database connection before the test database is dropped (otherwise
    PostgreSQL refuses: 'database "test_…" is being accessed by other users'). The gateway's ORM calls run
    in asgiref's single sync thread, so that is where the connection lives."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture(autouse=True)
def _db_outlives_gateway(request):
    """Set up the test database before the gateway server, so that it is torn down after it."""
    if "gateway_server" in request.fixturenames:
        request.getfixturevalue("_gateway_db_connections")
