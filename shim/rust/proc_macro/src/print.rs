//! `TokenStream`'s Display: rustc's `tts_to_string` (rustc_ast_pretty: `print_tts`, `space_between`,
//! `print_mac_common`) over the Oppen pretty printer of rustc_ast_pretty/src/pp.rs (margin 78, lines
//! broken in boxes that do not fit, braces in a consistent box indented by 4). The printer here computes
//! every box's and break's size over the whole token list instead of rustc's bounded ring buffer; the
//! decisions are the same (a size beyond the remaining space is what rustc's buffer marks as infinite).

use crate::tokens::{Sp, Tok, Tree};
use crate::Delimiter;

const MARGIN: isize = 78;
const MIN_SPACE: isize = 60;
const INFINITY: isize = 0xffff;
const INDENT_UNIT: isize = 4;

#[derive(Clone, Copy, PartialEq)]
enum Breaks {
    Consistent,
    Inconsistent,
}

enum Pp {
    Word(String),
    Break { blank: isize, offset: isize },
    Begin { offset: isize, breaks: Breaks },
    End,
}

#[derive(Default)]
pub(crate) struct Printer {
    toks: Vec<Pp>,
}

impl Printer {
    fn word(&mut self, s: impl Into<String>) {
        self.toks.push(Pp::Word(s.into()));
    }
    fn space(&mut self) {
        self.toks.push(Pp::Break { blank: 1, offset: 0 });
    }
    fn hardbreak(&mut self) {
        self.toks.push(Pp::Break { blank: INFINITY, offset: 0 });
    }
    fn begin(&mut self, offset: isize, breaks: Breaks) {
        self.toks.push(Pp::Begin { offset, breaks });
    }
    fn end(&mut self) {
        self.toks.push(Pp::End);
    }

    fn is_hardbreak(tok: Option<&Pp>) -> bool {
        matches!(tok, Some(Pp::Break { blank: INFINITY, .. }))
    }

    /// `bclose`: a break back to the enclosing indentation before `}` unless at the start of a line
    /// (after a hardbreak, whose offset takes the adjustment instead), then `}` and the end of the box.
    fn bclose(&mut self, empty: bool) {
        if !empty {
            if !Self::is_hardbreak(self.toks.last()) {
                self.toks.push(Pp::Break { blank: 1, offset: -INDENT_UNIT });
            } else if let Some(Pp::Break { offset, .. }) = self.toks.last_mut() {
                *offset = -INDENT_UNIT;
            }
        }
        self.word("}");
        self.end();
    }

    pub(crate) fn finish(self) -> String {
        let sizes = self.sizes();
        let mut out = String::new();
        let mut space = MARGIN;
        let mut indent: isize = 0;
        let mut pending: isize = 0;
        // Open boxes: None when the box fits, else (indentation to restore, breaks).
        let mut stack: Vec<Option<(isize, Breaks)>> = Vec::new();
        for (tok, size) in self.toks.iter().zip(sizes) {
            match tok {
                Pp::Begin { offset, breaks } => {
                    if size > space {
                        stack.push(Some((indent, *breaks)));
                        indent += offset;
                    } else {
                        stack.push(None);
                    }
                }
                Pp::End => {
                    if let Some(Some((saved, _))) = stack.pop() {
                        indent = saved;
                    }
                }
                Pp::Break { blank, offset } => {
                    let fits = match stack.last() {
                        Some(None) => true,
                        Some(Some((_, Breaks::Consistent))) => false,
                        Some(Some((_, Breaks::Inconsistent))) | None => size <= space,
                    };
                    if fits {
                        pending += blank;
                        space -= blank;
                    } else {
                        out.push('\n');
                        let at = indent + offset;
                        pending = at;
                        space = (MARGIN - at).max(MIN_SPACE);
                    }
                }
                Pp::Word(s) => {
                    for _ in 0..pending {
                        out.push(' ');
                    }
                    pending = 0;
                    out.push_str(s);
                    space -= s.len() as isize;
                }
            }
        }
        out
    }

    /// Oppen's sizes, settled as rustc's scan stack settles them (pp.rs `check_stack`): a word its length; a
    /// break or a box the length up to the next break that is not inside a box opened after it (so a box's
    /// size runs past its end to that break), or to the end; a hardbreak's blank counts, which breaks every
    /// box holding one.
    fn sizes(&self) -> Vec<isize> {
        let mut sizes = vec![0isize; self.toks.len()];
        let mut total: isize = 0;
        let mut stack: Vec<usize> = Vec::new();
        let settle = |stack: &mut Vec<usize>, sizes: &mut Vec<isize>, total: isize| {
            let mut depth = 0usize;
            while let Some(&i) = stack.last() {
                match self.toks[i] {
                    Pp::Begin { .. } => {
                        if depth == 0 {
                            break;
                        }
                        stack.pop();
                        sizes[i] += total;
                        depth -= 1;
                    }
                    Pp::End => {
                        stack.pop();
                        depth += 1;
                    }
                    _ => {
                        stack.pop();
                        sizes[i] += total;
                        if depth == 0 {
                            break;
                        }
                    }
                }
            }
        };
        for (i, tok) in self.toks.iter().enumerate() {
            match tok {
                Pp::Word(s) => {
                    sizes[i] = s.len() as isize;
                    total += sizes[i];
                }
                Pp::Begin { .. } => {
                    sizes[i] = -total;
                    stack.push(i);
                }
                Pp::End => {
                    if !stack.is_empty() {
                        stack.push(i);
                    }
                }
                Pp::Break { blank, .. } => {
                    settle(&mut stack, &mut sizes, total);
                    sizes[i] = -total;
                    stack.push(i);
                    total += blank;
                }
            }
        }
        settle(&mut stack, &mut sizes, total);
        sizes
    }

    pub(crate) fn print_tts(&mut self, trees: &[Tree]) {
        for (i, tree) in trees.iter().enumerate() {
            let spacing = self.print_tt(tree);
            if let Some(next) = trees.get(i + 1) {
                if spacing == Sp::Alone && space_between(tree, next) {
                    self.space();
                }
            }
        }
    }

    fn print_tt(&mut self, tree: &Tree) -> Sp {
        match &tree.tok {
            Tok::Group { delim, open, stream, .. } => {
                let trees = &stream.0[..];
                match delim {
                    Delimiter::Brace => {
                        self.begin(INDENT_UNIT, Breaks::Consistent);
                        self.word("{");
                        let open_space = *open == Sp::Alone && !trees.is_empty();
                        if open_space {
                            self.space();
                        }
                        self.begin(0, Breaks::Inconsistent);
                        self.print_tts(trees);
                        self.end();
                        self.bclose(!open_space);
                    }
                    _ => {
                        let (o, c) = match delim {
                            Delimiter::Parenthesis => ("(", ")"),
                            Delimiter::Bracket => ("[", "]"),
                            _ => ("", ""),
                        };
                        self.word(o);
                        self.begin(0, Breaks::Inconsistent);
                        self.print_tts(trees);
                        self.end();
                        self.word(c);
                    }
                }
            }
            Tok::Doc { .. } => {
                self.word(leaf_text(&tree.tok));
                self.hardbreak();
            }
            tok => self.word(leaf_text(tok)),
        }
        tree.spacing
    }
}

pub(crate) fn leaf_text(tok: &Tok) -> String {
    match tok {
        Tok::Ident { sym, raw, .. } => if *raw { format!("r#{sym}") } else { sym.to_string() },
        Tok::Lifetime { sym, raw, .. } => if *raw { format!("'r#{sym}") } else { format!("'{sym}") },
        Tok::Lit { text, .. } => text.to_string(),
        Tok::Op { text, .. } => text.to_string(),
        Tok::Doc { text, inner, block, .. } => match (block, inner) {
            (false, false) => format!("///{text}"),
            (false, true) => format!("//!{text}"),
            (true, false) => format!("/**{text}*/"),
            (true, true) => format!("/*!{text}*/"),
        },
        Tok::Group { .. } => String::new(),
    }
}

/// Keywords rustc's `Ident::is_reserved` names in edition 2021 (strict, reserved, and the 2018 ones).
const RESERVED: &[&str] = &[
    "_", "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl",
    "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct",
    "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final",
    "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "async", "await", "dyn", "try",
];

/// rustc_ast_pretty's `space_between`: whether a space goes between two trees when the first is `Alone`.
fn space_between(a: &Tree, b: &Tree) -> bool {
    match (&a.tok, &b.tok) {
        (Tok::Doc { block: false, .. }, _) => false,
        (Tok::Op { text: ".", .. }, b) if !b.is_punct() => false,
        (Tok::Op { text: "$", .. }, Tok::Ident { .. }) => false,
        (Tok::Ident { sym, raw, .. }, Tok::Op { text: "!", .. }) if *raw || !RESERVED.contains(&&**sym) => false,
        (a, Tok::Op { text: "," | ";" | ".", .. }) if !a.is_punct() => false,
        (Tok::Ident { sym, raw, .. }, Tok::Group { delim: Delimiter::Parenthesis, .. })
            if *raw || !RESERVED.contains(&&**sym) || matches!(&**sym, "fn" | "Self" | "pub") => false,
        (Tok::Op { text: "#", .. }, Tok::Group { delim: Delimiter::Bracket, .. }) => false,
        _ => true,
    }
}
