//! The guest glue of shim/macro/PROTOCOL.md (protocol version 1), reached as `proc_macro::__cratecage`:
//! the request decoder and reply encoder over this crate's types (mirrored by shim/macro/wire.py, same
//! tags), the span table of a request, the panic hook that hands the message to the `cratecage_macro.panic`
//! import before the guest aborts, and `__cratecage_export!`, which expands to the module's exports
//! (`cratecage_macro_abi`, `cratecage_alloc`, `cratecage_expand`, `cratecage_macros`) dispatching to the
//! macro crate's root functions. Nothing here reaches the host but through those exports and that import.

use std::cell::RefCell;
use std::rc::Rc;

use crate::span::{set_table, SpanInfo};
use crate::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

pub const ABI_VERSION: i32 = 1;
pub const REQUEST_MAGIC: u32 = 0x314d_4343; // "CCM1"
pub const REPLY_MAGIC: u32 = 0x3152_4343; // "CCR1"
pub const STATUS_OK: u8 = 0;
pub const STATUS_PANIC: u8 = 1;
pub const STATUS_REFUSED: u8 = 2;

/// Request kinds (the `u8 kind` of a request) and the listing's words for them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Derive = 0,
    Bang = 1,
    Attr = 2,
}

impl Kind {
    fn from_wire(byte: u8) -> Option<Kind> {
        [Kind::Derive, Kind::Bang, Kind::Attr].into_iter().find(|k| *k as u8 == byte)
    }
    pub fn word(self) -> &'static str {
        ["derive", "bang", "attr"][self as usize]
    }
}

pub struct Request {
    pub kind: Kind,
    pub name: String,
    pub spans: Vec<SpanInfo>,
    pub input: TokenStream,
    pub args: Option<TokenStream>,
}

// -- decoding ----------------------------------------------------------------------------------------------

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Malformed = String;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len()).ok_or("truncated")?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str(&mut self) -> Result<String, Malformed> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }
    fn opt_str(&mut self) -> Result<Option<String>, Malformed> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            other => Err(format!("option tag {other}")),
        }
    }
    fn span(&mut self) -> Result<Span, Malformed> {
        Ok(Span::from_ids(self.u32()?, self.u32()?))
    }
    fn span_info(&mut self) -> Result<SpanInfo, Malformed> {
        Ok(SpanInfo {
            file: self.str()?,
            local_file: self.opt_str()?,
            start_line: self.u32()?,
            start_column: self.u32()?,
            end_line: self.u32()?,
            end_column: self.u32()?,
            byte_start: self.u32()?,
            byte_end: self.u32()?,
            source_text: self.opt_str()?,
        })
    }
    fn stream(&mut self) -> Result<TokenStream, Malformed> {
        let count = self.u32()? as usize;
        let mut trees = Vec::with_capacity(count.min(self.buf.len()));
        for _ in 0..count {
            trees.push(self.tree()?);
        }
        Ok(trees.into_iter().collect())
    }
    fn tree(&mut self) -> Result<TokenTree, Malformed> {
        Ok(match self.u8()? {
            1 => {
                let delimiter = match self.u8()? {
                    0 => Delimiter::Parenthesis,
                    1 => Delimiter::Bracket,
                    2 => Delimiter::Brace,
                    3 => Delimiter::None,
                    other => return Err(format!("delimiter {other}")),
                };
                let spans = [self.span()?, self.span()?, self.span()?];
                TokenTree::Group(Group::with_spans(delimiter, self.stream()?, spans))
            }
            2 => {
                let span = self.span()?;
                let raw = self.u8()? == 1;
                let name = self.str()?;
                // `$crate` reaches a macro in tokens a `macro_rules!` expansion passed on; Ident::new refuses it.
                if !crate::is_ident(&name) && name != "$crate" {
                    return Err(format!("`{name}` is not an identifier"));
                }
                TokenTree::Ident(Ident { sym: name.into(), raw, span })
            }
            3 => {
                let span = self.span()?;
                let spacing = if self.u8()? == 1 { Spacing::Joint } else { Spacing::Alone };
                let ch = char::from_u32(self.u32()?).ok_or("a punct is not a Unicode scalar value")?;
                let mut buf = [0u8; 4];
                if crate::tokens::op(ch.encode_utf8(&mut buf)).is_none() || ch == '\0' {
                    return Err(format!("`{ch}` is not a punct"));
                }
                TokenTree::Punct(Punct { ch, spacing, span })
            }
            4 => {
                let span = self.span()?;
                TokenTree::Literal(Literal::from_text(&self.str()?, span))
            }
            other => return Err(format!("token tag {other}")),
        })
    }
}

pub fn decode_request(buf: &[u8]) -> Result<Request, Malformed> {
    let mut r = Reader { buf, pos: 0 };
    if r.u32()? != REQUEST_MAGIC {
        return Err("not a protocol 1 request".into());
    }
    let kind = Kind::from_wire(r.u8()?).ok_or("unknown macro kind")?;
    let name = r.str()?;
    let count = r.u32()? as usize;
    let mut spans = Vec::with_capacity(count.min(buf.len()));
    for _ in 0..count {
        spans.push(r.span_info()?);
    }
    let input = r.stream()?;
    let args = if kind == Kind::Attr { Some(r.stream()?) } else { None };
    if r.pos != buf.len() {
        return Err("trailing bytes".into());
    }
    Ok(Request { kind, name, spans, input, args })
}

// -- encoding ----------------------------------------------------------------------------------------------

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn put_span(out: &mut Vec<u8>, span: Span) {
    let (location, hygiene) = span.ids();
    put_u32(out, location);
    put_u32(out, hygiene);
}

pub fn encode_stream(out: &mut Vec<u8>, stream: TokenStream) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    put_u32(out, trees.len() as u32);
    for tree in trees {
        match tree {
            TokenTree::Group(g) => {
                out.push(1);
                out.push(match g.delimiter() {
                    Delimiter::Parenthesis => 0,
                    Delimiter::Bracket => 1,
                    Delimiter::Brace => 2,
                    Delimiter::None => 3,
                });
                put_span(out, g.span());
                put_span(out, g.span_open());
                put_span(out, g.span_close());
                encode_stream(out, g.stream());
            }
            TokenTree::Ident(i) => {
                out.push(2);
                put_span(out, i.span());
                let (name, raw) = i.parts();
                out.push(raw as u8);
                put_str(out, name);
            }
            TokenTree::Punct(p) => {
                out.push(3);
                put_span(out, p.span());
                out.push((p.spacing() == Spacing::Joint) as u8);
                put_u32(out, p.as_char() as u32);
            }
            TokenTree::Literal(l) => {
                out.push(4);
                put_span(out, l.span());
                put_str(out, l.text());
            }
        }
    }
}

pub fn encode_reply(status: u8, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, REPLY_MAGIC);
    out.push(status);
    body(&mut out);
    out
}

// -- the exports' bodies -----------------------------------------------------------------------------------

thread_local! {
    static REPLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static LISTING: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

#[link(wasm_import_module = "cratecage_macro")]
extern "C" {
    #[link_name = "panic"]
    fn cratecage_panic(ptr: *const u8, len: usize);
}

fn pack(ptr: *const u8, len: usize) -> i64 {
    (((ptr as usize as u64) << 32) | len as u64) as i64
}

/// `cratecage_alloc`: a buffer the host writes a request into; `expand` takes it back.
pub fn alloc(len: i32) -> i32 {
    let buf = vec![0u8; len.max(0) as usize].into_boxed_slice();
    Box::into_raw(buf) as *mut u8 as usize as i32
}

/// `cratecage_macros`: the listing, one macro per line (`derive <Name> <fn> [helper,...]`, `bang <name> <fn>`,
/// `attr <name> <fn>`).
pub fn listing(macros: &[(Kind, &str, &str, &[&str])]) -> i64 {
    let text = LISTING.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let mut text = String::new();
                for (kind, name, function, helpers) in macros {
                    text.push_str(&format!("{} {name} {function}", kind.word()));
                    if !helpers.is_empty() {
                        text.push(' ');
                        text.push_str(&helpers.join(","));
                    }
                    text.push('\n');
                }
                text.into()
            })
            .clone()
    });
    pack(text.as_ptr(), text.len())
}

fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    // SAFETY: the import reads `len` bytes at `ptr`, which `message` keeps alive for the call.
    unsafe { cratecage_panic(message.as_ptr(), message.len()) };
}

/// The macro for a request's kind and name, run on its input (and attribute arguments), if the module has it.
pub type Dispatch = dyn Fn(Kind, &str, TokenStream, Option<TokenStream>) -> Option<TokenStream>;

/// `cratecage_expand`: decodes the request at `ptr` (from `alloc`), runs the macro `dispatch` finds for its
/// kind and name, and returns the packed reply, valid until the next call.
pub fn expand(ptr: i32, len: i32, dispatch: &Dispatch) -> i64 {
    std::panic::set_hook(Box::new(panic_hook));
    // SAFETY: `ptr`/`len` is a buffer `alloc` leaked and the host filled; ownership comes back here once.
    let raw = std::ptr::slice_from_raw_parts_mut(ptr as usize as *mut u8, len.max(0) as usize);
    let buf = unsafe { Box::from_raw(raw) };
    let reply = match decode_request(&buf) {
        Err(why) => encode_reply(STATUS_REFUSED, |out| {
            let message = format!("cratecage: a malformed macro request ({why}); this is a bug in cratecage, \
                                   please report it");
            put_str(out, &message)
        }),
        Ok(request) => {
            drop(buf);
            set_table(request.spans);
            let name = request.name;
            match dispatch(request.kind, &name, request.input, request.args) {
                Some(output) => encode_reply(STATUS_OK, |out| encode_stream(out, output)),
                None => encode_reply(STATUS_REFUSED, |out| {
                    let kind = request.kind.word();
                    let message = format!("cratecage: this module exports no {kind} macro `{name}`; rebuild the macro \
                                           crate (`cargo clean -p <its package>`)");
                    put_str(out, &message)
                }),
            }
        }
    };
    REPLY.with(|cell| {
        let mut stored = cell.borrow_mut();
        *stored = reply;
        pack(stored.as_ptr(), stored.len())
    })
}

/// The exports of a macro module, dispatching to the crate root's functions (written by shim/macro/rewrite.py
/// at the end of a rewritten root):
///
/// ```ignore
/// ::proc_macro::__cratecage_export! {
///     derive Serialize => derive_serialize (serde, other_helper),
///     bang json => json,
///     attr main => main,
/// }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __cratecage_export {
    ($($kind:ident $name:ident => $function:ident $(($($helper:ident),* $(,)?))?),* $(,)?) => {
        // A wasm32-wasip1 cdylib of older toolchains has no reactor start-up (`_initialize`, from
        // crt1-reactor.o in newer ones): without a call to the constructors (the facade's among them) of
        // its own, wasm-ld wraps every export to run them at each call. The server calls `_initialize` where
        // the toolchain provides it, else this, once after instantiating.
        #[no_mangle]
        pub extern "C" fn cratecage_initialize() {
            extern "C" {
                fn __wasm_call_ctors();
            }
            unsafe { __wasm_call_ctors() }
        }

        #[no_mangle]
        pub extern "C" fn cratecage_macro_abi() -> i32 {
            $crate::__cratecage::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn cratecage_alloc(len: i32) -> i32 {
            $crate::__cratecage::alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn cratecage_macros() -> i64 {
            $crate::__cratecage::listing(&[$(
                ($crate::__cratecage_kind!($kind), stringify!($name), stringify!($function),
                 &[$($(stringify!($helper)),*)?]),
            )*])
        }

        #[no_mangle]
        pub extern "C" fn cratecage_expand(ptr: i32, len: i32) -> i64 {
            $crate::__cratecage::expand(ptr, len, &|kind, name, input, args| {
                $(
                    if kind == $crate::__cratecage_kind!($kind) && name == stringify!($name) {
                        return Some($crate::__cratecage_call!($kind $function input args));
                    }
                )*
                let _ = (input, args);
                None
            })
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __cratecage_kind {
    (derive) => { $crate::__cratecage::Kind::Derive };
    (bang) => { $crate::__cratecage::Kind::Bang };
    (attr) => { $crate::__cratecage::Kind::Attr };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __cratecage_call {
    (derive $f:ident $input:ident $args:ident) => { $f($input) };
    (bang $f:ident $input:ident $args:ident) => { $f($input) };
    (attr $f:ident $input:ident $args:ident) => { $f($args.unwrap_or_default(), $input) };
}
