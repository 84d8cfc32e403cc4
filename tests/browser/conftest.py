import pytest


@pytest.fixture(scope="module", autouse=True)
def _release_request_thread_connections():
    """Django runs each ASGI request's sync code in a thread of its own; the database connection such a thread
    opened (CONN_MAX_AGE > 0) is only closed when the garbage collector reclaims it. Reclaim them now, so that
    PostgreSQL can drop the test database at the end of the run."""
    yield
    import gc

    gc.collect()
