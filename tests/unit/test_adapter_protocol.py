"""providers.adapter_protocol: every wire adapter the catalogue names fulfils the declared contract —
the functions exist with the declared parameters, the stream parser has feed/close/complete/usage, and
`supports_embeddings` says truly whether the embeddings pair is there."""

import inspect

import pytest

from providers import adapter_protocol
from providers.adapter_protocol import ChatAdapter, EmbeddingsAdapter
from providers.adapters import adapter_for, embeddings_adapter
from providers.catalogue import CATALOGUE

WIRES = sorted({spec.wire for spec in CATALOGUE.values()})


def declared(protocol) -> dict[str, inspect.Signature]:
    """The protocol's methods (its own and inherited), without `self`."""
    out = {}
    for klass in reversed(protocol.__mro__):
        for name, member in vars(klass).items():
            if klass.__module__ == adapter_protocol.__name__ and inspect.isfunction(member) and \
                    not name.startswith("_"):
                signature = inspect.signature(member)
                out[name] = signature.replace(parameters=list(signature.parameters.values())[1:])
    return out


def shape(signature: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def fits(actual: inspect.Signature, wanted: inspect.Signature) -> bool:
    """Callable as declared: the declared parameters first, as declared; any further one optional."""
    have, need = shape(actual), shape(wanted)
    return have[:len(need)] == need and all(default is not inspect.Parameter.empty
                                            for _, _, default in have[len(need):])


def test_the_catalogue_names_three_wires():
    assert WIRES == ["anthropic", "gemini", "openai_compat"]


@pytest.mark.parametrize("wire", WIRES)
def test_every_adapter_fulfils_the_chat_contract(wire):
    adapter = adapter_for(wire)
    assert isinstance(adapter, ChatAdapter)
    assert isinstance(adapter.supports_embeddings, bool)
    for name, signature in declared(ChatAdapter).items():
        assert fits(inspect.signature(getattr(adapter, name)), signature), f"{wire}.{name}"


@pytest.mark.parametrize("wire", WIRES)
def test_every_stream_parser_fulfils_its_contract(wire):
    parser_class = adapter_for(wire).StreamParser
    for name, signature in declared(adapter_protocol.StreamParser).items():
        method = inspect.signature(getattr(parser_class, name))
        assert fits(method.replace(parameters=list(method.parameters.values())[1:]), signature), name
    parser = parser_class("some-model")
    assert (parser.complete, parser.usage, parser.close()) == (False, None, [])


@pytest.mark.parametrize("wire", WIRES)
def test_supports_embeddings_is_true_exactly_when_the_embeddings_pair_is_there(wire):
    adapter = adapter_for(wire)
    assert isinstance(adapter, EmbeddingsAdapter) is adapter.supports_embeddings
    assert (embeddings_adapter(adapter) is adapter) is adapter.supports_embeddings
    if adapter.supports_embeddings:
        for name in set(declared(EmbeddingsAdapter)) - set(declared(ChatAdapter)):
            assert fits(inspect.signature(getattr(adapter, name)), declared(EmbeddingsAdapter)[name]), name


def test_embeddings_are_declared_where_the_providers_offer_them():
    assert {wire: adapter_for(wire).supports_embeddings for wire in WIRES} == {
        "anthropic": False, "gemini": True, "openai_compat": True}


def test_the_check_refuses_what_breaks_the_contract():
    def build_chat_request(body, target, model, stream, required_extra): ...

    def parse_chat_response(raw, model=""): ...

    wanted = declared(ChatAdapter)
    assert not fits(inspect.signature(build_chat_request), wanted["build_chat_request"])
    assert fits(inspect.signature(parse_chat_response), wanted["parse_chat_response"])
    incomplete = type("Module", (), {"supports_embeddings": False, "build_chat_request": build_chat_request})
    assert not isinstance(incomplete, ChatAdapter)
