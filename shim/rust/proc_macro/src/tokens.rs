//! The internal token model: rustc's own tokens (glued operators, lifetimes, doc comments) with rustc's
//! three spacings, because `TokenStream`'s Display prints them as rustc's pretty printer does and needs what
//! the public trees lose (an identifier followed directly by `+` prints as `a+b`). Iterating a stream splits
//! them into the public `TokenTree`s exactly as rustc's proc-macro server does (proc_macro_server.rs).

use std::rc::Rc;

use crate::{Delimiter, Span};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sp {
    Alone,
    Joint,
    JointHidden,
}

#[derive(Clone)]
pub(crate) enum Tok {
    Group { delim: Delimiter, open: Sp, stream: crate::TokenStream, span: Span, span_open: Span, span_close: Span },
    Ident { sym: Rc<str>, raw: bool, span: Span },
    Lifetime { sym: Rc<str>, raw: bool, span: Span },
    Lit { text: Rc<str>, span: Span },
    Op { text: &'static str, span: Span },
    Doc { text: Rc<str>, inner: bool, block: bool, span: Span },
}

#[derive(Clone)]
pub(crate) struct Tree {
    pub tok: Tok,
    pub spacing: Sp,
}

impl Tok {
    pub fn is_punct(&self) -> bool {
        matches!(self, Tok::Op { .. })
    }
}

/// Every operator token rustc has, longest first per first character.
pub(crate) const OPS: &[&str] = &[
    "<<=", ">>=", "...", "..=", "<=", "==", "!=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=", "&=", "|=",
    "<<", ">>", "..", "::", "->", "<-", "=>", "=", "<", ">", "!", "~", "+", "-", "*", "/", "%", "^", "&", "|", "@",
    ".", ",", ";", ":", "#", "$", "?", "'",
];

pub(crate) fn op(text: &str) -> Option<&'static str> {
    OPS.iter().copied().find(|o| *o == text)
}

/// rustc's `Token::glue`: the operator two adjacent operators make, if any.
pub(crate) fn glue(a: &str, b: &str) -> Option<&'static str> {
    let joined = match (a, b) {
        ("=", "=") | ("=", ">") | ("<", "=") | ("<", "<") | ("<<", "=") | ("<", "-") | (">", "=") | (">", ">")
        | (">>", "=") | ("!", "=") | ("&", "&") | ("|", "|") | ("-", ">") | (".", ".") | ("..", ".")
        | ("..", "=") | (":", ":") => format!("{a}{b}"),
        ("+" | "-" | "*" | "/" | "%" | "^" | "&" | "|", "=") => format!("{a}{b}"),
        _ => return None,
    };
    op(&joined)
}

/// Appends `tree`, gluing it to a joint last token as rustc's `TokenStream::push_tree` does.
pub(crate) fn push_glued(trees: &mut Vec<Tree>, tree: Tree) {
    if let Some(last) = trees.last_mut() {
        if last.spacing != Sp::Alone {
            let glued = match (&last.tok, &tree.tok) {
                (Tok::Op { text: a, span }, Tok::Op { text: b, .. }) => {
                    glue(a, b).map(|text| Tok::Op { text, span: *span })
                }
                (Tok::Op { text: "'", span }, Tok::Ident { sym, raw, .. }) => {
                    Some(Tok::Lifetime { sym: sym.clone(), raw: *raw, span: *span })
                }
                _ => None,
            };
            if let Some(tok) = glued {
                *last = Tree { tok, spacing: tree.spacing };
                return;
            }
        }
    }
    trees.push(tree);
}
