"""shim.macro.wire: PROTOCOL.md's encoding in Python, round trips and what it refuses (a reply comes from a
guest, so nothing malformed may come out as a value or a Python error other than WireError)."""

from __future__ import annotations

import io
import struct

import pytest

from shim.macro import wire
from shim.macro.wire import Group, Ident, Literal, Punct, Reply, Request, SpanInfo, WireError

INFO = SpanInfo("src/lib.rs", "/ws/src/lib.rs", 1, 0, 2, 5, 0, 17, "fn é() {}\n}")
STREAM = (Punct("#", False, (2, 2)), Group("bracket", (Ident("derive"), Group("parenthesis", (Ident("X"),))), (3, 3)),
          Ident("fn", raw=True, span=(0, 5)), Punct("'", True), Ident("a"), Literal('b"\\xff"', (1, 1)),
          Group("none", (), (4, 4), (5, 5), (6, 6)), Literal("-1i8"), Punct("~"))


@pytest.mark.parametrize("request_", [
    Request("derive", "Serialize", (INFO, INFO._replace(local_file=None, source_text=None)), STREAM),
    Request("bang", "json", (), ()),
    Request("attr", "main", (INFO,), STREAM, (Ident("x"),)),
    Request("attr", "main", (INFO,), (), ()),
])
def test_requests_round_trip(request_: Request) -> None:
    assert wire.decode_request(wire.encode_request(request_)) == request_


@pytest.mark.parametrize("reply", [Reply("ok", output=STREAM), Reply("ok", output=()),
                                   Reply("panic", message="boom ü"), Reply("refused", message="cratecage: no")])
def test_replies_round_trip(reply: Reply) -> None:
    assert wire.decode_reply(wire.encode_reply(reply)) == reply


def test_the_layout_is_the_documented_one() -> None:
    data = wire.encode_request(Request("bang", "m", (), (Ident("x", span=(2, 2)),)))
    assert data == (struct.pack("<IB", 0x314D4343, 1) + struct.pack("<I", 1) + b"m" + struct.pack("<I", 0)
                    + struct.pack("<IB", 1, 2) + struct.pack("<IIB", 2, 2, 0) + struct.pack("<I", 1) + b"x")
    assert wire.encode_reply(Reply("ok", output=(Punct("+", True),))) == (
        struct.pack("<IBIB", 0x31524343, 0, 1, 3) + struct.pack("<IIBI", 0, 0, 1, ord("+")))


def nested(depth: int) -> bytes:
    """A reply whose groups nest `depth` deep."""
    body = struct.pack("<I", 0)
    for _ in range(depth):
        body = struct.pack("<IBB6I", 1, 1, 0, 0, 0, 0, 0, 0, 0) + body
    return struct.pack("<IB", wire.REPLY_MAGIC, 0) + body


@pytest.mark.parametrize("data, why", [
    (b"", "truncated"),
    (struct.pack("<IB", 0x12345678, 0), "not a protocol 1 reply"),
    (struct.pack("<IB", wire.REPLY_MAGIC, 7), "reply status 7"),
    (wire.encode_reply(Reply("ok", output=STREAM))[:-1], "truncated"),
    (wire.encode_reply(Reply("ok", output=())) + b"x", "trailing bytes"),
    (struct.pack("<IBIB", wire.REPLY_MAGIC, 0, 1, 9), "token tag 9"),
    (struct.pack("<IBIBB", wire.REPLY_MAGIC, 0, 1, 1, 4), "delimiter 4"),
    (struct.pack("<IBIB2IBI", wire.REPLY_MAGIC, 0, 1, 3, 0, 0, 0, 0xD800), "not a Unicode scalar value"),
    (struct.pack("<IBI", wire.REPLY_MAGIC, 1, 2) + b"\xff\xfe", "not UTF-8"),
    (struct.pack("<IBI", wire.REPLY_MAGIC, 0, 0xFFFFFFFF), "truncated"),
    (nested(wire.MAX_DEPTH + 5), "nested deeper"),
])
def test_a_malformed_reply_is_a_wire_error(data: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        wire.decode_reply(data)


def test_deep_but_allowed_nesting_decodes_without_recursion() -> None:
    reply = wire.decode_reply(nested(wire.MAX_DEPTH - 1))
    depth, tree = 0, reply.output
    while tree:
        depth, tree = depth + 1, tree[0].stream
    assert depth == wire.MAX_DEPTH - 1


def test_frames_carry_one_message_each_and_a_torn_frame_is_an_error() -> None:
    pipe = io.BytesIO(wire.frame(b"one") + wire.frame(b"") + wire.frame(b"three"))
    assert [wire.read_frame(pipe) for _ in range(4)] == [b"one", b"", b"three", None]
    with pytest.raises(WireError, match="truncated frame"):
        wire.read_frame(io.BytesIO(wire.frame(b"three")[:-1]))
    with pytest.raises(WireError, match="frame length"):
        wire.read_frame(io.BytesIO(b"\1\0"))


def test_the_listing_parses_into_rewrite_s_record_order() -> None:
    listing = ("derive Serialize derive_serialize serde,other\nderive Plain derive_plain\n"
               "bang json json\nattr main main\n")
    assert wire.parse_listing(listing) == [("derive", "Serialize", "derive_serialize", ("serde", "other")),
                                           ("derive", "Plain", "derive_plain", ()), ("bang", "json", "json", ()),
                                           ("attr", "main", "main", ())]
    for bad in ("macro x y\n", "bang x\n", "bang x y z\n", "\n"):
        with pytest.raises(WireError, match="malformed listing"):
            wire.parse_listing(bad)
