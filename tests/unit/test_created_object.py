"""A provider's answer to a file or batch create is recorded only with an id the gateway can route by: anything
else is a 502 provider_error (invalid_upstream_response), never a row keyed on a bad id."""

from types import SimpleNamespace

import orjson
import pytest

from gomodel.gateway.batches import BATCH_ID
from gomodel.gateway.errors import GatewayError
from gomodel.gateway.files import FILE_ID, created_object
from providers.base import Target

TARGET = Target(id=7, name="openai", provider_type="openai", wire="openai_compat",
                base_url="https://api.openai.example/v1", api_key="sk-secret-upstream")


def answer(body) -> SimpleNamespace:
    return SimpleNamespace(content=body if isinstance(body, bytes) else orjson.dumps(body))


@pytest.mark.parametrize("pattern, what, good", [(FILE_ID, "file", "file-abc123"), (BATCH_ID, "batch", "batch_abc123")])
def test_a_usable_id_is_kept(pattern, what, good):
    assert created_object(TARGET, answer({"id": good, "object": what}), pattern, what)["id"] == good


@pytest.mark.parametrize("pattern, what", [(FILE_ID, "file"), (BATCH_ID, "batch")])
@pytest.mark.parametrize("body", [{"object": "x"}, {"id": 42}, {"id": "../../etc"}, {"id": "x" * 10_000}, [1],
                                  b"not json"])
def test_an_unusable_answer_is_a_502(pattern, what, body):
    with pytest.raises(GatewayError) as caught:
        created_object(TARGET, answer(body), pattern, what)
    err = caught.value
    assert (err.status, err.type, err.code) == (502, "provider_error", "invalid_upstream_response")
    assert "sk-secret-upstream" not in err.message and "openai" in err.message
