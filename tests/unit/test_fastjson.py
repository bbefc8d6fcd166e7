"""The C-speed JSON-RPC parser given to the ``ovs`` library reads the same values out of
the same chunked streams as the library's own parser, and fails where it fails."""

from __future__ import annotations

import json
import random

import ovs.json
import pytest

from vgw_ryu.store import fastjson


def _value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "bool", "null"] + (["dict", "list"] * 2 if depth < 4
                                                       else [])
    kind = rng.choice(kinds)
    if kind == "dict":
        return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randrange(5))}
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == "str":
        return _text(rng)
    if kind == "int":
        return rng.randrange(-10**12, 10**12)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "bool":
        return rng.random() < 0.5
    return None


def _text(rng: random.Random) -> str:
    # JSON inside strings (as the policy rows hold it), escapes and non-ASCII.
    pieces = ['{"a": [1, 2]}', "}", "]", '"', "\\", "\n", "é", "日本", "x" * 30, " ", "0"]
    return "".join(rng.choice(pieces) for _ in range(rng.randrange(6)))


def _read(parser_cls, chunks: list[str]) -> list:
    """What ovs.jsonrpc.Connection.recv does with a Python parser: feed what came,
    keep the unused rest for the next value. (The library's own parser finds itself
    by its module name, so it runs with that name its own again.)"""
    installed = ovs.json.Parser
    ovs.json.Parser = fastjson._ORIGINAL
    try:
        return _feed(parser_cls, chunks)
    finally:
        ovs.json.Parser = installed


def _feed(parser_cls, chunks: list[str]) -> list:
    out, parser, pending = [], None, ""
    for chunk in chunks:
        pending += chunk
        while pending:
            if parser is None:
                parser = parser_cls()
            pending = pending[parser.feed(pending):]
            if parser.is_done():
                out.append(parser.finish())
                parser = None
            else:
                break
    return out


def _chunks(rng: random.Random, text: str) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randrange(1, 40))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("seed", range(30))
def test_chunked_messages_read_as_the_librarys_parser_reads_them(seed):
    rng = random.Random(seed)
    messages = [{"id": k, "method": "update", "params": [_value(rng), _value(rng)]}
                for k in range(rng.randrange(1, 6))]
    text = "".join(json.dumps(m, ensure_ascii=rng.random() < 0.5) + rng.choice(["", " ", "\n"])
                   for m in messages)
    chunks = _chunks(rng, text)
    want = _read(fastjson._ORIGINAL, chunks)
    got = _read(fastjson.StreamParser, chunks)
    assert got == want == messages


def test_a_big_update_in_4k_chunks_reads_whole():
    rows = {f"uuid-{i}": {"new": {"name": f"vm{i}", "doc": json.dumps(
        {"ips": [f"10.0.{i >> 8}.{i & 255}"], "labels": {"g": f"g{i // 100}"}})}}
        for i in range(2000)}
    msg = {"id": None, "method": "update3", "params": [None, "0", {"VM": rows}]}
    text = json.dumps(msg) + json.dumps({"id": 7, "result": [{}], "error": None})
    chunks = [text[i:i + 4096] for i in range(0, len(text), 4096)]
    assert _read(fastjson.StreamParser, chunks) == [msg, {"id": 7, "result": [{}],
                                                         "error": None}]


@pytest.mark.parametrize("bad", ['{"a": 1,, "b": 2}', '{"a": tru}', '[1, 2}', '{"a"\x01: 1}'])
def test_malformed_input_is_an_error_string_as_with_the_library(bad):
    for cls in (fastjson._ORIGINAL, fastjson.StreamParser):
        assert all(isinstance(v, str) for v in _read(cls, [bad])), cls
        installed = ovs.json.Parser
        ovs.json.Parser = fastjson._ORIGINAL
        try:
            p = cls()
            p.feed(bad)
            assert isinstance(p.finish(), str), cls
        finally:
            ovs.json.Parser = installed


def test_from_string_uses_it_once_installed_and_sees_trailing_garbage():
    # (installed when the store is imported, as in every process that uses OVSDB)
    assert fastjson.install() == (ovs.json.PARSER != ovs.json.PARSER_C)
    assert ovs.json.Parser is fastjson.StreamParser
    assert ovs.json.from_string('{"a": [1, "}"]}') == {"a": [1, "}"]}
    assert isinstance(ovs.json.from_string('{"a": 1} x'), str)
    assert ovs.json.from_string("12") == 12
