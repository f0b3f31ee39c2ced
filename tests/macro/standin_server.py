"""A stand-in macro server for the trampoline's tests: speaks shim/macro/PROTOCOL.md's framing and wire
format, and answers each macro of fixtures/trampoline's `tmacros` by name, the way its native twin does:

    Named (derive)    `impl <T> { pub const NAME: &'static str = "<T>"; }` (the ident after struct/enum)
    swap!(a - b)      the three tokens reversed
    scale(N) (attr)   the item, then `fn <f>_scaled() -> i32 { <f>() * N }`
    counted!()        `(<server pid>, <requests this server has seen>)`
    fail_at!(a b c)   `compile_error!{"bad token"}` with every token spanned at the second input token
    spanned!(x)       `undefined_function(x)` with the callee spanned at `x` (quote_spanned!)
    boom!()           status 1 "boom: the guest panicked"
    refuse!()         status 2, a `cratecage:` line
    die!()            exits without replying
    garbage!()        a reply that is not one
    hostile!(case)    a reply no guest made with proc_macro could send (`HOSTILE`): the trampoline must refuse
                      it, never parse it into other tokens or crash rustc; `far_spans` is well-formed

It keeps the span ids it was given (location == hygiene), as a guest's tokens do.
"""

from __future__ import annotations

import json
import os
import struct
import sys

REQUEST_MAGIC, REPLY_MAGIC = 0x314D4343, 0x31524343


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise ValueError("short request")
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def str(self) -> str:
        return self.take(self.u32()).decode()

    def opt_str(self) -> str | None:
        return self.str() if self.u8() else None

    def span(self) -> tuple[int, int]:
        return self.u32(), self.u32()

    def stream(self) -> list:
        return [self.tree() for _ in range(self.u32())]

    def tree(self) -> tuple:
        tag = self.u8()
        if tag == 1:
            delim = self.u8()
            whole, open_, close = self.span(), self.span(), self.span()
            return ("group", delim, whole, open_, close, self.stream())
        if tag == 2:
            span = self.span()
            raw = self.u8()
            return ("ident", span, raw, self.str())
        if tag == 3:
            span = self.span()
            spacing = self.u8()
            return ("punct", span, spacing, chr(self.u32()))
        if tag == 4:
            span = self.span()
            return ("literal", span, self.str())
        raise ValueError(f"tag {tag}")


def read_request(data: bytes) -> dict:
    r = Reader(data)
    assert r.u32() == REQUEST_MAGIC
    kind = r.u8()
    name = r.str()
    spans = []
    for _ in range(r.u32()):
        spans.append(dict(file=r.str(), local_file=r.opt_str(), start=(r.u32(), r.u32()), end=(r.u32(), r.u32()),
                          bytes=(r.u32(), r.u32()), text=r.opt_str()))
    request = dict(kind=kind, name=name, spans=spans, input=r.stream())
    if kind == 2:
        request["args"] = r.stream()
    assert r.pos == len(data), "bytes after the request"
    return request


def _str(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def _span(span: tuple[int, int]) -> bytes:
    return struct.pack("<II", *span)


def encode_stream(trees: list) -> bytes:
    out = struct.pack("<I", len(trees))
    for tree in trees:
        kind = tree[0]
        if kind == "group":
            _, delim, whole, open_, close, inner = tree
            out += bytes([1, delim]) + _span(whole) + _span(open_) + _span(close) + encode_stream(inner)
        elif kind == "ident":
            _, span, raw, name = tree
            out += bytes([2]) + _span(span) + bytes([raw]) + _str(name)
        elif kind == "punct":
            _, span, spacing, ch = tree
            out += bytes([3]) + _span(span) + bytes([spacing]) + struct.pack("<I", ord(ch))
        else:
            _, span, text = tree
            out += bytes([4]) + _span(span) + _str(text)
    return out


CALL_SITE = (0, 0)


def ident(name: str, span: tuple[int, int] = CALL_SITE) -> tuple:
    return ("ident", span, 0, name)


def punct(ch: str, span: tuple[int, int] = CALL_SITE, joint: bool = False) -> tuple:
    return ("punct", span, 1 if joint else 0, ch)


def literal(text: str, span: tuple[int, int] = CALL_SITE) -> tuple:
    return ("literal", span, text)


def group(delim: int, inner: list, span: tuple[int, int] = CALL_SITE) -> tuple:
    return ("group", delim, span, span, span, inner)


PAREN, BRACKET, BRACE = 0, 1, 2
COUNT = 0


def expand(request: dict) -> tuple[int, object]:
    global COUNT
    COUNT += 1
    name, tokens = request["name"], request["input"]
    if name == "Named":
        target = next(t for i, t in enumerate(tokens) if i and tokens[i - 1][0] == "ident"
                      and tokens[i - 1][3] in ("struct", "enum") and t[0] == "ident")
        # `&'static`: a joint quote before the ident makes one lifetime
        body = [ident("pub"), ident("const"), ident("NAME"), punct(":"), punct("&"), punct("'", joint=True),
                ident("static"), ident("str"), punct("="), literal(f'"{target[3]}"'), punct(";")]
        return 0, [ident("impl"), ident(target[3]), group(BRACE, body)]
    if name == "swap":
        return 0, list(reversed(tokens))
    if name == "scale":
        fn_name = next(t[3] for i, t in enumerate(tokens) if i and tokens[i - 1][0] == "ident" and tokens[i - 1][3] == "fn")
        factor = request["args"]
        tail = [ident("fn"), ident(f"{fn_name}_scaled"), group(PAREN, []), punct("-", joint=True), punct(">"),
                ident("i32"), group(BRACE, [ident(fn_name), group(PAREN, []), punct("*"), *factor])]
        return 0, [*tokens, *tail]
    if name == "counted":
        return 0, [group(PAREN, [literal(f"{os.getpid()}u32"), punct(","), literal(f"{COUNT}u32")])]
    if name == "fail_at":
        at = tokens[1][1]
        return 0, [("punct", at, 1, ":"), ("punct", at, 0, ":"), ident("core", at), ("punct", at, 1, ":"),
                   ("punct", at, 0, ":"), ident("compile_error", at), ("punct", at, 0, "!"),
                   ("group", BRACE, at, at, at, [literal('"bad token"', at)])]
    if name == "spanned":
        at = tokens[0][1]
        return 0, [ident("undefined_function", at), group(PAREN, tokens)]
    if name == "boom":
        return 1, "boom: the guest panicked"
    if name == "refuse":
        return 2, "cratecage: macro `refuse` of tmacros was refused by the stand-in; grant it nothing"
    if name == "die":
        sys.exit(3)
    if name == "garbage":
        return -1, b"\x01\x02\x03"
    if name == "hostile":
        answer = HOSTILE[tokens[0][3]]
        if isinstance(answer, bytes):
            return -1, struct.pack("<IB", REPLY_MAGIC, 0) + answer
        return 0, answer
    return 1, f"the stand-in server knows no macro {name}"


def nested(depth: int) -> bytes:
    """A stream of `depth` nested empty-bracketed groups, encoded without recursion."""
    head = b"\x01" + bytes([PAREN]) + b"\x00" * 24
    return struct.pack("<I", 1) + (head + struct.pack("<I", 1)) * (depth - 1) + head + struct.pack("<I", 0)


# hostile!(case): what the stand-in answers, a stream of trees or raw reply bytes (after magic and status 0)
HOSTILE = {
    "inject": [literal("1; evil!()")],  # one literal that is two statements and a macro call
    "commented": [literal("1 /* evil */")],
    "spaced": [ident("a b")],  # an ident that is no ident
    "raw_crate": [("ident", CALL_SITE, 1, "crate")],  # `r#crate` does not exist
    "not_punct": [punct("a")],
    "deep": nested(5000),  # deeper than the trampoline decodes
    "not_utf8": b"\x01\x00\x00\x00\x02" + b"\x00" * 8 + b"\x00\x02\x00\x00\x00\xff\xfe",
    "lying_count": b"\xff\xff\xff\xff\x03" + b"\x00" * 8 + b"\x00" + b";\x00\x00\x00",
    "far_spans": [ident("const", (0xFFFFFFFF, 7)), ident("HOSTILE_SPAN", (123456, 0xFFFFFFFE)), punct(":"),
                  ident("u8"), punct("="), literal("1", (2**31, 2**31)), punct(";")],
}


def reply(status: int, body: object) -> bytes:
    if status == -1:
        return body  # type: ignore[return-value]
    head = struct.pack("<IB", REPLY_MAGIC, status)
    return head + (encode_stream(body) if status == 0 else _str(body))  # type: ignore[arg-type]


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    log = os.environ.get("STANDIN_LOG")
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        request = read_request(stdin.read(struct.unpack("<I", head)[0]))
        if log:
            with open(log, "a") as f:
                call_site = request["spans"][0]  # the trampoline sends the call site first
                f.write(f"{os.getpid()} {os.getppid()} {request['name']} {len(request['spans'])} "
                        f"{call_site['start'][0]} {call_site['start'][1]} {json.dumps(call_site['text'])}\n")
        data = reply(*expand(request))
        stdout.write(struct.pack("<I", len(data)) + data)
        stdout.flush()


if __name__ == "__main__":
    main()
