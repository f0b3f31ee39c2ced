//! cratecage's `proc_macro` for wasm32-wasip1: the stable public API of the compiler's `proc_macro`, for a
//! proc-macro crate compiled as a wasm guest (shim/macro/PROTOCOL.md). The real crate only works inside
//! rustc (notes/sandbox-experiments.md §2, §6); proc-macro2 picks the methods it calls by cfgs computed
//! against the host compiler and, with `is_available() == true`, calls into this crate for everything, so
//! every stable item must exist and behave like rustc's: tokens.rs keeps rustc's own token model, lexer.rs
//! is `FromStr`, print.rs is `Display` (rustc's pretty printer), span.rs answers location queries from the
//! request's span table, and `__cratecage` (cratecage.rs) is the guest glue: the wire format, the panic
//! hook, and `__cratecage_export!`, which a rewritten macro crate root ends with.
//!
//! Built once per toolchain against the std facade by shim/toolchain/shipped.py.

mod cratecage;
mod lexer;
mod literal;
mod print;
mod span;
mod tokens;

#[doc(hidden)]
pub mod __cratecage {
    pub use crate::cratecage::*;
}

use std::fmt;
use std::iter::FromIterator;
use std::rc::Rc;
use std::str::FromStr;

pub use span::Span;
use tokens::{push_glued, Sp, Tok, Tree};

/// Always true: this crate exists only inside an expansion.
pub fn is_available() -> bool {
    true
}

#[derive(Clone, Default)]
pub struct TokenStream(pub(crate) Rc<Vec<Tree>>);

#[derive(Clone)]
pub enum TokenTree {
    Group(Group),
    Ident(Ident),
    Punct(Punct),
    Literal(Literal),
}

#[derive(Clone)]
pub struct Group {
    delimiter: Delimiter,
    stream: TokenStream,
    span: Span,
    span_open: Span,
    span_close: Span,
}

#[derive(Clone)]
pub struct Ident {
    sym: Rc<str>,
    raw: bool,
    span: Span,
}

#[derive(Clone)]
pub struct Punct {
    ch: char,
    spacing: Spacing,
    span: Span,
}

#[derive(Clone)]
pub struct Literal {
    text: Rc<str>,
    span: Span,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Delimiter {
    Parenthesis,
    Brace,
    Bracket,
    None,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Spacing {
    Joint,
    Alone,
}

#[non_exhaustive]
#[derive(Debug)]
pub struct LexError;

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot parse string into token stream")
    }
}

impl std::error::Error for LexError {}

// -- TokenStream -------------------------------------------------------------------------------------------

impl TokenStream {
    pub fn new() -> TokenStream {
        TokenStream::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, tree: TokenTree) {
        let trees = Rc::make_mut(&mut self.0);
        for t in internal(tree) {
            push_glued(trees, t);
        }
    }

    fn push_stream(&mut self, stream: TokenStream) {
        if self.0.is_empty() {
            *self = stream;
            return;
        }
        let trees = Rc::make_mut(&mut self.0);
        let mut rest = stream.0.iter().cloned();
        if let Some(first) = rest.next() {
            push_glued(trees, first);
        }
        trees.extend(rest);
    }
}

/// A public tree as rustc's tokens (proc_macro_server's `to_internal`): identifiers and literals `Alone`,
/// a negative number as `-` and the number, a group's delimiters `Alone`.
fn internal(tree: TokenTree) -> Vec<Tree> {
    let alone = |tok| Tree { tok, spacing: Sp::Alone };
    match tree {
        TokenTree::Group(g) => vec![alone(Tok::Group {
            delim: g.delimiter, open: Sp::Alone, stream: g.stream, span: g.span, span_open: g.span_open,
            span_close: g.span_close,
        })],
        TokenTree::Ident(i) => vec![alone(Tok::Ident { sym: i.sym, raw: i.raw, span: i.span })],
        TokenTree::Punct(p) => {
            let mut buf = [0u8; 4];
            let text = tokens::op(p.ch.encode_utf8(&mut buf)).unwrap_or_else(|| unreachable!());
            let spacing = if p.spacing == Spacing::Joint { Sp::Joint } else { Sp::Alone };
            vec![Tree { tok: Tok::Op { text, span: p.span }, spacing }]
        }
        TokenTree::Literal(l) => match l.text.strip_prefix('-') {
            Some(number) => vec![
                Tree { tok: Tok::Op { text: "-", span: l.span }, spacing: Sp::JointHidden },
                alone(Tok::Lit { text: number.into(), span: l.span }),
            ],
            None => vec![alone(Tok::Lit { text: l.text, span: l.span })],
        },
    }
}

/// rustc's tokens as public trees (proc_macro_server's `from_internal`).
fn public(tree: &Tree, out: &mut Vec<TokenTree>) {
    let joint = tree.spacing == Sp::Joint;
    let punct = |ch, joint, span| {
        TokenTree::Punct(Punct { ch, spacing: if joint { Spacing::Joint } else { Spacing::Alone }, span })
    };
    match &tree.tok {
        Tok::Group { delim, stream, span, span_open, span_close, .. } => out.push(TokenTree::Group(Group {
            delimiter: *delim, stream: stream.clone(), span: *span, span_open: *span_open, span_close: *span_close,
        })),
        Tok::Ident { sym, raw, span } => out.push(TokenTree::Ident(Ident { sym: sym.clone(), raw: *raw, span: *span })),
        Tok::Lifetime { sym, raw, span } => {
            out.push(punct('\'', true, *span));
            out.push(TokenTree::Ident(Ident { sym: sym.clone(), raw: *raw, span: *span }));
        }
        Tok::Lit { text, span } => out.push(TokenTree::Literal(Literal { text: text.clone(), span: *span })),
        Tok::Op { text, span } => {
            let n = text.chars().count();
            for (i, ch) in text.chars().enumerate() {
                out.push(punct(ch, i + 1 < n || joint, *span));
            }
        }
        Tok::Doc { text, inner, span, .. } => {
            out.push(punct('#', false, *span));
            if *inner {
                out.push(punct('!', false, *span));
            }
            let escaped: String = text.chars().flat_map(char::escape_debug).collect();
            let body = vec![
                Tree { tok: Tok::Ident { sym: "doc".into(), raw: false, span: *span }, spacing: Sp::Alone },
                Tree { tok: Tok::Op { text: "=", span: *span }, spacing: Sp::Alone },
                Tree { tok: Tok::Lit { text: format!("\"{escaped}\"").into(), span: *span }, spacing: Sp::Alone },
            ];
            out.push(TokenTree::Group(Group {
                delimiter: Delimiter::Bracket, stream: TokenStream(Rc::new(body)), span: *span, span_open: *span,
                span_close: *span,
            }));
        }
    }
}

impl FromStr for TokenStream {
    type Err = LexError;
    fn from_str(src: &str) -> Result<TokenStream, LexError> {
        lexer::parse(src).map_err(|()| LexError)
    }
}

impl fmt::Display for TokenStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = print::Printer::default();
        printer.print_tts(&self.0);
        f.write_str(&printer.finish())
    }
}

impl fmt::Debug for TokenStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenStream ")?;
        f.debug_list().entries(self.clone()).finish()
    }
}

impl From<TokenTree> for TokenStream {
    fn from(tree: TokenTree) -> TokenStream {
        let mut stream = TokenStream::new();
        stream.push(tree);
        stream
    }
}

impl FromIterator<TokenTree> for TokenStream {
    fn from_iter<I: IntoIterator<Item = TokenTree>>(trees: I) -> Self {
        let mut stream = TokenStream::new();
        stream.extend(trees);
        stream
    }
}

impl FromIterator<TokenStream> for TokenStream {
    fn from_iter<I: IntoIterator<Item = TokenStream>>(streams: I) -> Self {
        let mut stream = TokenStream::new();
        stream.extend(streams);
        stream
    }
}

impl Extend<TokenTree> for TokenStream {
    fn extend<I: IntoIterator<Item = TokenTree>>(&mut self, trees: I) {
        for tree in trees {
            self.push(tree);
        }
    }
}

impl Extend<TokenStream> for TokenStream {
    fn extend<I: IntoIterator<Item = TokenStream>>(&mut self, streams: I) {
        for stream in streams {
            self.push_stream(stream);
        }
    }
}

macro_rules! extend_with {
    ($($t:ident)*) => {$(
        impl Extend<$t> for TokenStream {
            fn extend<I: IntoIterator<Item = $t>>(&mut self, items: I) {
                self.extend(items.into_iter().map(TokenTree::$t));
            }
        }
        impl From<$t> for TokenTree {
            fn from(item: $t) -> TokenTree {
                TokenTree::$t(item)
            }
        }
    )*};
}
extend_with!(Group Ident Punct Literal);

pub mod token_stream {
    //! `TokenStream`'s iterator.
    use crate::{public, TokenStream, TokenTree};

    #[derive(Clone)]
    pub struct IntoIter {
        stream: TokenStream,
        next: usize,
        queued: std::collections::VecDeque<TokenTree>,
    }

    impl Iterator for IntoIter {
        type Item = TokenTree;
        fn next(&mut self) -> Option<TokenTree> {
            if let Some(tree) = self.queued.pop_front() {
                return Some(tree);
            }
            let tree = self.stream.0.get(self.next)?;
            self.next += 1;
            let mut out = Vec::new();
            public(tree, &mut out);
            self.queued.extend(out);
            self.queued.pop_front()
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (self.stream.0.len() - self.next + self.queued.len(), None)
        }
    }

    impl IntoIterator for TokenStream {
        type Item = TokenTree;
        type IntoIter = IntoIter;
        fn into_iter(self) -> IntoIter {
            IntoIter { stream: self, next: 0, queued: Default::default() }
        }
    }
}

// -- TokenTree ---------------------------------------------------------------------------------------------

impl TokenTree {
    pub fn span(&self) -> Span {
        match self {
            TokenTree::Group(t) => t.span(),
            TokenTree::Ident(t) => t.span(),
            TokenTree::Punct(t) => t.span(),
            TokenTree::Literal(t) => t.span(),
        }
    }
    pub fn set_span(&mut self, span: Span) {
        match self {
            TokenTree::Group(t) => t.set_span(span),
            TokenTree::Ident(t) => t.set_span(span),
            TokenTree::Punct(t) => t.set_span(span),
            TokenTree::Literal(t) => t.set_span(span),
        }
    }
}

impl fmt::Display for TokenTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenTree::Group(t) => fmt::Display::fmt(t, f),
            TokenTree::Ident(t) => fmt::Display::fmt(t, f),
            TokenTree::Punct(t) => fmt::Display::fmt(t, f),
            TokenTree::Literal(t) => fmt::Display::fmt(t, f),
        }
    }
}

impl fmt::Debug for TokenTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenTree::Group(t) => fmt::Debug::fmt(t, f),
            TokenTree::Ident(t) => fmt::Debug::fmt(t, f),
            TokenTree::Punct(t) => fmt::Debug::fmt(t, f),
            TokenTree::Literal(t) => fmt::Debug::fmt(t, f),
        }
    }
}

// -- Group -------------------------------------------------------------------------------------------------

impl Group {
    pub fn new(delimiter: Delimiter, stream: TokenStream) -> Group {
        let span = Span::call_site();
        Group { delimiter, stream, span, span_open: span, span_close: span }
    }
    pub fn delimiter(&self) -> Delimiter {
        self.delimiter
    }
    pub fn stream(&self) -> TokenStream {
        self.stream.clone()
    }
    pub fn span(&self) -> Span {
        self.span
    }
    pub fn span_open(&self) -> Span {
        self.span_open
    }
    pub fn span_close(&self) -> Span {
        self.span_close
    }
    pub fn set_span(&mut self, span: Span) {
        self.span = span;
        self.span_open = span;
        self.span_close = span;
    }
    pub(crate) fn with_spans(delimiter: Delimiter, stream: TokenStream, spans: [Span; 3]) -> Group {
        Group { delimiter, stream, span: spans[0], span_open: spans[1], span_close: spans[2] }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&TokenStream::from(TokenTree::Group(self.clone())), f)
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("delimiter", &self.delimiter)
            .field("stream", &self.stream)
            .field("span", &self.span)
            .finish()
    }
}

// -- Ident -------------------------------------------------------------------------------------------------

impl Ident {
    pub fn new(string: &str, span: Span) -> Ident {
        if !is_ident(string) {
            panic!("`{string:?}` is not a valid identifier");
        }
        Ident { sym: string.into(), raw: false, span }
    }
    pub fn new_raw(string: &str, span: Span) -> Ident {
        if !is_ident(string) {
            panic!("`{string:?}` is not a valid identifier");
        }
        if matches!(string, "_" | "super" | "self" | "Self" | "crate") {
            panic!("`{string}` cannot be a raw identifier");
        }
        Ident { sym: string.into(), raw: true, span }
    }
    pub fn span(&self) -> Span {
        self.span
    }
    pub fn set_span(&mut self, span: Span) {
        self.span = span;
    }
    pub(crate) fn parts(&self) -> (&str, bool) {
        (&self.sym, self.raw)
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if lexer::is_id_start(c)) && chars.all(lexer::is_id_continue)
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.raw {
            f.write_str("r#")?;
        }
        f.write_str(&self.sym)
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ident").field("ident", &self.to_string()).field("span", &self.span).finish()
    }
}

// -- Punct -------------------------------------------------------------------------------------------------

impl Punct {
    pub fn new(ch: char, spacing: Spacing) -> Punct {
        const LEGAL: &str = "=<>!~+-*/%^&|@.,;:#$?'";
        if !LEGAL.contains(ch) {
            panic!("unsupported character `{ch:?}`");
        }
        Punct { ch, spacing, span: Span::call_site() }
    }
    pub fn as_char(&self) -> char {
        self.ch
    }
    pub fn spacing(&self) -> Spacing {
        self.spacing
    }
    pub fn span(&self) -> Span {
        self.span
    }
    pub fn set_span(&mut self, span: Span) {
        self.span = span;
    }
}

impl fmt::Display for Punct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ch)
    }
}

impl fmt::Debug for Punct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Punct")
            .field("ch", &self.ch)
            .field("spacing", &self.spacing)
            .field("span", &self.span)
            .finish()
    }
}

impl PartialEq<char> for Punct {
    fn eq(&self, rhs: &char) -> bool {
        self.ch == *rhs
    }
}

impl PartialEq<Punct> for char {
    fn eq(&self, rhs: &Punct) -> bool {
        *self == rhs.ch
    }
}
