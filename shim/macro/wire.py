"""The macro protocol's wire format in Python (shim/macro/PROTOCOL.md, version 1): requests and replies,
the frames around them on the server's pipes, and the guest's listing of its macros.

The guest side is shim/rust/proc_macro/src/cratecage.rs, with the same tags; the server (shim.macro.server)
and the tests speak through this module. Standard library only (the server starts with `python -S`), and
decoding is iterative with a bound on nesting, because a reply comes from a guest and may be hostile: any
malformation is a WireError, never a RecursionError or a partial value.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Final, NamedTuple, Optional, Union

ABI_VERSION: Final = 1
REQUEST_MAGIC: Final = 0x314D4343  # "CCM1"
REPLY_MAGIC: Final = 0x31524343  # "CCR1"
KINDS: Final = ("derive", "bang", "attr")  # the request's u8 kind is the index
DELIMITERS: Final = ("parenthesis", "bracket", "brace", "none")  # the group's u8 delimiter is the index
STATUSES: Final = ("ok", "panic", "refused")  # the reply's u8 status is the index
MAX_DEPTH: Final = 4096  # groups nested deeper than this are malformed
MAX_FRAME: Final = 1 << 30

TAG_GROUP, TAG_IDENT, TAG_PUNCT, TAG_LITERAL = 1, 2, 3, 4

Span = tuple[int, int]  # (location, hygiene) span ids: 0 call site, 1 mixed site, 2 + k the table's entry k
CALL_SITE: Final[Span] = (0, 0)
MIXED_SITE: Final[Span] = (1, 1)


class WireError(ValueError):
    """A malformed request, reply or frame."""


class SpanInfo(NamedTuple):
    file: str
    local_file: Optional[str]
    start_line: int  # 1-based
    start_column: int  # 0-based
    end_line: int
    end_column: int
    byte_start: int
    byte_end: int
    source_text: Optional[str]


class Group(NamedTuple):
    delimiter: str  # one of DELIMITERS
    stream: tuple["Tree", ...]
    span: Span = CALL_SITE
    open: Span = CALL_SITE
    close: Span = CALL_SITE


class Ident(NamedTuple):
    name: str  # without `r#`
    raw: bool = False
    span: Span = CALL_SITE


class Punct(NamedTuple):
    char: str
    joint: bool = False
    span: Span = CALL_SITE


class Literal(NamedTuple):
    text: str  # the token text as `Literal::to_string()` gives it
    span: Span = CALL_SITE


Tree = Union[Group, Ident, Punct, Literal]


class Request(NamedTuple):
    kind: str  # one of KINDS
    name: str
    spans: tuple[SpanInfo, ...]
    input: tuple[Tree, ...]
    args: Optional[tuple[Tree, ...]] = None  # attribute macros only


class Reply(NamedTuple):
    status: str  # one of STATUSES
    output: Optional[tuple[Tree, ...]] = None  # "ok"
    message: Optional[str] = None  # "panic", "refused"


# -- encoding ----------------------------------------------------------------------------------------------

def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _str(text: str) -> bytes:
    data = text.encode()
    return _u32(len(data)) + data


def _opt_str(text: Optional[str]) -> bytes:
    return b"\0" if text is None else b"\1" + _str(text)


def _span(span: Span) -> bytes:
    return struct.pack("<II", *span)


def encode_stream(stream: tuple[Tree, ...]) -> bytes:
    out = bytearray(_u32(len(stream)))
    for tree in stream:
        if isinstance(tree, Group):
            out += bytes([TAG_GROUP, DELIMITERS.index(tree.delimiter)])
            out += _span(tree.span) + _span(tree.open) + _span(tree.close) + encode_stream(tree.stream)
        elif isinstance(tree, Ident):
            out += bytes([TAG_IDENT]) + _span(tree.span) + bytes([int(tree.raw)]) + _str(tree.name)
        elif isinstance(tree, Punct):
            out += bytes([TAG_PUNCT]) + _span(tree.span) + bytes([int(tree.joint)]) + _u32(ord(tree.char))
        else:
            out += bytes([TAG_LITERAL]) + _span(tree.span) + _str(tree.text)
    return bytes(out)


def encode_span_info(info: SpanInfo) -> bytes:
    return (_str(info.file) + _opt_str(info.local_file)
            + struct.pack("<6I", info.start_line, info.start_column, info.end_line, info.end_column,
                          info.byte_start, info.byte_end)
            + _opt_str(info.source_text))


def encode_request(request: Request) -> bytes:
    out = _u32(REQUEST_MAGIC) + bytes([KINDS.index(request.kind)]) + _str(request.name)
    out += _u32(len(request.spans)) + b"".join(encode_span_info(s) for s in request.spans)
    out += encode_stream(request.input)
    if request.kind == "attr":
        out += encode_stream(request.args or ())
    return out


def encode_reply(reply: Reply) -> bytes:
    out = _u32(REPLY_MAGIC) + bytes([STATUSES.index(reply.status)])
    if reply.status == "ok":
        return out + encode_stream(reply.output or ())
    return out + _str(reply.message or "")


# -- decoding ----------------------------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise WireError("truncated")
        chunk = bytes(self.data[self.pos:end])
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def str(self) -> str:
        try:
            return self.take(self.u32()).decode()
        except UnicodeDecodeError:
            raise WireError("a string is not UTF-8") from None

    def opt_str(self) -> Optional[str]:
        tag = self.u8()
        if tag > 1:
            raise WireError(f"option tag {tag}")
        return self.str() if tag else None

    def span(self) -> Span:
        return (self.u32(), self.u32())

    def span_info(self) -> SpanInfo:
        file, local = self.str(), self.opt_str()
        numbers = struct.unpack("<6I", self.take(24))
        return SpanInfo(file, local, *numbers, self.opt_str())

    def stream(self) -> tuple[Tree, ...]:
        """Iterative: a frame per open group (its header and the trees read so far)."""
        frames: list[tuple[Optional[tuple[str, Span, Span, Span]], int, list[Tree]]] = [(None, self.u32(), [])]
        while True:
            header, count, trees = frames[-1]
            if len(trees) == count:
                frames.pop()
                if header is None:
                    return tuple(trees)
                delimiter, span, open_, close = header
                frames[-1][2].append(Group(delimiter, tuple(trees), span, open_, close))
                continue
            if count - len(trees) > len(self.data) - self.pos:
                raise WireError("truncated")
            tag = self.u8()
            if tag == TAG_GROUP:
                code = self.u8()
                if code >= len(DELIMITERS):
                    raise WireError(f"delimiter {code}")
                header = (DELIMITERS[code], self.span(), self.span(), self.span())
                if len(frames) > MAX_DEPTH:
                    raise WireError(f"groups nested deeper than {MAX_DEPTH}")
                frames.append((header, self.u32(), []))
            elif tag == TAG_IDENT:
                span, raw = self.span(), self.u8() == 1
                trees.append(Ident(self.str(), raw, span))
            elif tag == TAG_PUNCT:
                span, joint, code = self.span(), self.u8() == 1, self.u32()
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise WireError(f"punct {code:#x} is not a Unicode scalar value")
                trees.append(Punct(chr(code), joint, span))
            elif tag == TAG_LITERAL:
                span = self.span()
                trees.append(Literal(self.str(), span))
            else:
                raise WireError(f"token tag {tag}")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise WireError("trailing bytes")


def decode_request(data: bytes) -> Request:
    r = _Reader(data)
    if r.u32() != REQUEST_MAGIC:
        raise WireError("not a protocol 1 request")
    code = r.u8()
    if code >= len(KINDS):
        raise WireError(f"macro kind {code}")
    kind, name = KINDS[code], r.str()
    count = r.u32()
    if count > len(data):
        raise WireError("truncated")
    spans = tuple(r.span_info() for _ in range(count))
    stream = r.stream()
    args = r.stream() if kind == "attr" else None
    r.end()
    return Request(kind, name, spans, stream, args)


def decode_reply(data: bytes) -> Reply:
    r = _Reader(data)
    if r.u32() != REPLY_MAGIC:
        raise WireError("not a protocol 1 reply")
    code = r.u8()
    if code >= len(STATUSES):
        raise WireError(f"reply status {code}")
    reply = Reply("ok", output=r.stream()) if code == 0 else Reply(STATUSES[code], message=r.str())
    r.end()
    return reply


# -- frames and the listing ----------------------------------------------------------------------------------

def frame(message: bytes) -> bytes:
    """A message on the trampoline <-> server pipes: u32 length, then the bytes."""
    return _u32(len(message)) + message


def read_frame(stream: BinaryIO) -> Optional[bytes]:
    """The next message, or None at a clean end of the stream. Raises WireError on a torn one."""
    head = stream.read(4)
    if not head:
        return None
    if len(head) < 4:
        raise WireError("truncated frame length")
    (length,) = struct.unpack("<I", head)
    if length > MAX_FRAME:
        raise WireError(f"a frame of {length} bytes")
    body = stream.read(length)
    if len(body) != length:
        raise WireError("truncated frame")
    return body


def parse_listing(text: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """`cratecage_macros()`'s listing as (kind, name, function, helpers) tuples, the order of
    shim.macro.rewrite's records."""
    macros = []
    for line in text.splitlines():
        words = line.split(" ")
        if not line or words[0] not in KINDS or len(words) not in (3, 4) or (len(words) == 4 and words[0] != "derive"):
            raise WireError(f"a malformed listing line: {line!r}")
        helpers = tuple(words[3].split(",")) if len(words) == 4 else ()
        macros.append((words[0], words[1], words[2], helpers))
    return macros
