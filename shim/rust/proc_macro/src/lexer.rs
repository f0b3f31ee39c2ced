//! `TokenStream::from_str`: Rust's lexer (rustc_lexer's rules) and rustc's token-tree builder over it
//! (rustc_parse's tokentrees.rs): adjacent operators glued, each token's spacing from what follows it
//! (whitespace or a comment: `Alone`; an operator: `Joint`; anything else: `JointHidden`; the end: `Alone`),
//! doc comments kept as tokens, comments skipped, a leading shebang line and byte-order mark dropped.
//! Whatever rustc rejects (unbalanced delimiters, unterminated literals or comments, unknown characters,
//! malformed numbers) is an `Err`.

use std::rc::Rc;

use crate::tokens::{op, push_glued, Sp, Tok, Tree};
use crate::{Delimiter, Span, TokenStream};

pub(crate) struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

enum Raw {
    Tok(Tok),
    Open(Delimiter),
    Close(Delimiter),
}

pub(crate) fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{200E}' | '\u{200F}' | '\u{2028}'
                | '\u{2029}')
}

/// XID_Start / XID_Continue, exact for ASCII; for other characters std's alphabetic/alphanumeric classes,
/// which differ from XID only in rare characters (the real lexer's Unicode tables are not vendored).
pub(crate) fn is_id_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic() || (!c.is_ascii() && c.is_alphabetic())
}

pub(crate) fn is_id_continue(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric() || (!c.is_ascii() && c.is_alphanumeric())
}

impl<'a> Cursor<'a> {
    fn peek(&self, n: usize) -> char {
        self.src[self.pos..].chars().nth(n).unwrap_or('\0')
    }
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }
    fn bump(&mut self) -> char {
        let c = self.src[self.pos..].chars().next().unwrap_or('\0');
        self.pos += c.len_utf8();
        c
    }
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }
    fn eat_while(&mut self, f: impl Fn(char) -> bool) {
        while !self.at_end() && f(self.peek(0)) {
            self.bump();
        }
    }

    /// Skips whitespace and comments; returns whether there were any.
    fn skip_trivia(&mut self) -> Result<bool, ()> {
        let start = self.pos;
        loop {
            let rest = self.rest();
            if rest.starts_with("//") && !is_line_doc(rest) {
                self.eat_while(|c| c != '\n');
            } else if rest.starts_with("/*") && !is_block_doc(rest) {
                self.block_comment()?;
            } else if !self.at_end() && is_whitespace(self.peek(0)) {
                self.bump();
            } else {
                return Ok(self.pos != start);
            }
        }
    }

    fn block_comment(&mut self) -> Result<(), ()> {
        self.pos += 2;
        let mut depth = 1;
        while depth > 0 {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(());
            } else if rest.starts_with("/*") {
                self.pos += 2;
                depth += 1;
            } else if rest.starts_with("*/") {
                self.pos += 2;
                depth -= 1;
            } else {
                self.bump();
            }
        }
        Ok(())
    }

    fn next_raw(&mut self) -> Result<Raw, ()> {
        let rest = self.rest();
        let span = Span::call_site();
        if is_line_doc(rest) {
            let inner = rest.as_bytes()[2] == b'!';
            self.pos += 3;
            let start = self.pos;
            self.eat_while(|c| c != '\n');
            let text = &self.src[start..self.pos];
            if text.contains('\r') {
                return Err(());
            }
            return Ok(Raw::Tok(Tok::Doc { text: text.into(), inner, block: false, span }));
        }
        if is_block_doc(rest) {
            let inner = rest.as_bytes()[2] == b'!';
            let start = self.pos;
            self.block_comment()?;
            let text = &self.src[start + 3..self.pos - 2];
            if text.contains('\r') {
                return Err(());
            }
            return Ok(Raw::Tok(Tok::Doc { text: text.into(), inner, block: true, span }));
        }
        let c = self.peek(0);
        match c {
            '(' => { self.bump(); return Ok(Raw::Open(Delimiter::Parenthesis)); }
            '[' => { self.bump(); return Ok(Raw::Open(Delimiter::Bracket)); }
            '{' => { self.bump(); return Ok(Raw::Open(Delimiter::Brace)); }
            ')' => { self.bump(); return Ok(Raw::Close(Delimiter::Parenthesis)); }
            ']' => { self.bump(); return Ok(Raw::Close(Delimiter::Bracket)); }
            '}' => { self.bump(); return Ok(Raw::Close(Delimiter::Brace)); }
            _ => {}
        }
        let start = self.pos;
        let tok = match c {
            '\'' => self.quote(start)?,
            '"' => { self.bump(); self.quoted('"')?; self.lit(start) }
            '0'..='9' => { self.number()?; self.lit(start) }
            'b' | 'c' | 'r' if self.literal_prefix() => self.prefixed(start)?,
            c if is_id_start(c) => {
                self.eat_while(is_id_continue);
                let sym = &self.src[start..self.pos];
                // Reserved prefixes (edition 2021): `foo"..."`, `foo'x'`, `foo#`.
                if matches!(self.peek(0), '"' | '\'' | '#') {
                    return Err(());
                }
                Tok::Ident { sym: sym.into(), raw: false, span }
            }
            _ => {
                let mut buf = [0u8; 4];
                match op(c.encode_utf8(&mut buf)) {
                    Some(text) => { self.bump(); Tok::Op { text, span } }
                    None => return Err(()),
                }
            }
        };
        Ok(Raw::Tok(tok))
    }

    fn lit(&mut self, start: usize) -> Tok {
        if is_id_start(self.peek(0)) {
            self.eat_while(is_id_continue);
        }
        Tok::Lit { text: self.src[start..self.pos].into(), span: Span::call_site() }
    }

    /// `b'`, `b"`, `br"`, `br#`, `c"`, `cr"`, `cr#`, `r"`, `r#` (a raw string or a raw identifier).
    fn literal_prefix(&self) -> bool {
        let (c0, c1, c2) = (self.peek(0), self.peek(1), self.peek(2));
        match c0 {
            'b' => c1 == '\'' || c1 == '"' || (c1 == 'r' && (c2 == '"' || c2 == '#')),
            'c' => c1 == '"' || (c1 == 'r' && (c2 == '"' || c2 == '#')),
            'r' => c1 == '"' || c1 == '#',
            _ => false,
        }
    }

    fn prefixed(&mut self, start: usize) -> Result<Tok, ()> {
        let first = self.bump();
        if first == 'r' && self.peek(0) == '#' && is_id_start(self.peek(1)) {
            self.bump();
            let id_start = self.pos;
            self.eat_while(is_id_continue);
            let sym = &self.src[id_start..self.pos];
            if matches!(sym, "_" | "self" | "super" | "Self" | "crate") || matches!(self.peek(0), '"' | '\'' | '#') {
                return Err(());
            }
            return Ok(Tok::Ident { sym: sym.into(), raw: true, span: Span::call_site() });
        }
        let raw = first == 'r' || (self.peek(0) == 'r' && { self.bump(); true });
        if raw {
            self.raw_string()?;
        } else {
            let quote = self.bump();
            self.quoted(quote)?;
            if quote == '\'' && !single_char(&self.src[start + 2..self.pos - 1]) {
                return Err(());
            }
        }
        Ok(self.lit(start))
    }

    fn raw_string(&mut self) -> Result<(), ()> {
        let mut hashes = 0;
        while self.peek(0) == '#' {
            self.bump();
            hashes += 1;
        }
        if self.peek(0) != '"' || hashes > 255 {
            return Err(());
        }
        self.bump();
        loop {
            if self.at_end() {
                return Err(());
            }
            if self.bump() == '"' && self.rest().bytes().take(hashes).filter(|b| *b == b'#').count() == hashes {
                self.pos += hashes;
                return Ok(());
            }
        }
    }

    /// The rest of a quoted literal after its opening quote.
    fn quoted(&mut self, quote: char) -> Result<(), ()> {
        loop {
            if self.at_end() {
                return Err(());
            }
            match self.bump() {
                '\\' => {
                    if self.at_end() {
                        return Err(());
                    }
                    self.bump();
                }
                c if c == quote => return Ok(()),
                '\n' if quote == '\'' => return Err(()),
                _ => {}
            }
        }
    }

    /// `'`: a lifetime, a character literal, or a lone quote.
    fn quote(&mut self, start: usize) -> Result<Tok, ()> {
        self.bump();
        let (c0, c1) = (self.peek(0), self.peek(1));
        let can_be_lifetime = c1 != '\'' && (is_id_start(c0) || c0.is_ascii_digit());
        if !can_be_lifetime {
            self.quoted('\'')?;
            if !single_char(&self.src[start + 1..self.pos - 1]) {
                return Err(());
            }
            return Ok(self.lit(start));
        }
        if c0 == 'r' && c1 == '#' && is_id_start(self.peek(2)) {
            self.pos += 2;
            let id = self.pos;
            self.eat_while(is_id_continue);
            return Ok(Tok::Lifetime { sym: self.src[id..self.pos].into(), raw: true, span: Span::call_site() });
        }
        if c0.is_ascii_digit() {
            return Err(());
        }
        self.eat_while(is_id_continue);
        if self.peek(0) == '\'' {
            return Err(()); // a character literal of more than one character
        }
        Ok(Tok::Lifetime { sym: self.src[start + 1..self.pos].into(), raw: false, span: Span::call_site() })
    }

    fn digits(&mut self, hex: bool) -> bool {
        let mut any = false;
        while !self.at_end() {
            let c = self.peek(0);
            if c == '_' {
            } else if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
                any = true;
            } else {
                break;
            }
            self.bump();
        }
        any
    }

    fn number(&mut self) -> Result<(), ()> {
        let first = self.bump();
        let mut radix = 10;
        if first == '0' {
            match self.peek(0) {
                'b' | 'o' | 'x' => {
                    radix = match self.bump() { 'b' => 2, 'o' => 8, _ => 16 };
                    if !self.digits(radix == 16) {
                        return Err(());
                    }
                }
                '0'..='9' | '_' => { self.digits(false); }
                '.' | 'e' | 'E' => {}
                _ => return Ok(()),
            }
        } else {
            self.digits(false);
        }
        if radix != 10 {
            return self.check_digits(radix);
        }
        match self.peek(0) {
            '.' if self.peek(1) != '.' && !is_id_start(self.peek(1)) => {
                self.bump();
                if self.peek(0).is_ascii_digit() {
                    self.digits(false);
                    if matches!(self.peek(0), 'e' | 'E') {
                        self.bump();
                        self.exponent()?;
                    }
                }
            }
            'e' | 'E' => {
                self.bump();
                self.exponent()?;
            }
            _ => {}
        }
        Ok(())
    }

    /// rustc rejects digits beyond the radix (`0b102`) once the literal is lexed.
    fn check_digits(&self, radix: u32) -> Result<(), ()> {
        let text = &self.src[..self.pos];
        let digits = text.rsplit(|c| c == 'b' || c == 'o' || c == 'x').next().unwrap_or("");
        if digits.chars().filter(|c| *c != '_').all(|c| c.is_digit(radix)) { Ok(()) } else { Err(()) }
    }

    fn exponent(&mut self) -> Result<(), ()> {
        if matches!(self.peek(0), '-' | '+') {
            self.bump();
        }
        if self.digits(false) { Ok(()) } else { Err(()) }
    }
}

fn single_char(body: &str) -> bool {
    let mut chars = body.chars();
    match chars.next() {
        Some('\\') => true, // an escape; its form is checked by rustc when the literal is used
        Some(_) => chars.next().is_none(),
        None => false,
    }
}

fn is_line_doc(s: &str) -> bool {
    (s.starts_with("///") && !s.starts_with("////")) || s.starts_with("//!")
}

fn is_block_doc(s: &str) -> bool {
    (s.starts_with("/**") && !s.starts_with("/***") && !s.starts_with("/**/")) || s.starts_with("/*!")
}

/// rustc_lexer's `strip_shebang`: a first line starting with `#!` that is not an inner attribute.
fn strip_shebang(src: &str) -> &str {
    if let Some(tail) = src.strip_prefix("#!") {
        let mut cursor = Cursor { src: tail, pos: 0 };
        let attribute = cursor.skip_trivia().is_ok() && cursor.peek(0) == '[';
        if !attribute {
            return &src[2 + tail.lines().next().unwrap_or("").len()..];
        }
    }
    src
}

struct Frame {
    delim: Delimiter,
    open: Sp,
    trees: Vec<Tree>,
}

pub(crate) fn parse(src: &str) -> Result<TokenStream, ()> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let normalized;
    let src = if src.contains("\r\n") { normalized = src.replace("\r\n", "\n"); &normalized[..] } else { src };
    let src = strip_shebang(src);
    let mut cursor = Cursor { src, pos: 0 };
    cursor.skip_trivia()?;
    let mut stack: Vec<Frame> = vec![Frame { delim: Delimiter::None, open: Sp::Alone, trees: Vec::new() }];
    // The token read but not yet placed, with what follows it deciding its spacing.
    let mut pending: Option<Raw> = None;
    loop {
        let raw = match pending.take() {
            Some(raw) => raw,
            None if cursor.at_end() => break,
            None => cursor.next_raw()?,
        };
        let space = cursor.skip_trivia()?;
        let next = if cursor.at_end() { None } else { Some(cursor.next_raw()?) };
        let spacing = match &next {
            _ if space => Sp::Alone,
            None => Sp::Alone,
            Some(Raw::Tok(t)) if t.is_punct() => Sp::Joint,
            Some(_) => Sp::JointHidden,
        };
        match raw {
            Raw::Open(delim) => stack.push(Frame { delim, open: spacing, trees: Vec::new() }),
            Raw::Close(delim) => {
                if stack.len() < 2 || stack.last().map(|f| f.delim) != Some(delim) {
                    return Err(());
                }
                let frame = stack.pop().unwrap_or_else(|| unreachable!());
                let stream = TokenStream(Rc::new(frame.trees));
                let span = Span::call_site();
                let tok = Tok::Group { delim, open: frame.open, stream, span, span_open: span, span_close: span };
                stack.last_mut().unwrap_or_else(|| unreachable!()).trees.push(Tree { tok, spacing });
            }
            Raw::Tok(tok) => {
                let trees = &mut stack.last_mut().unwrap_or_else(|| unreachable!()).trees;
                // Adjacent operators glue into one token (`+` `=` is `+=`), as rustc's token-tree builder does.
                let joint_before = trees.last().map(|t| t.spacing != Sp::Alone && t.tok.is_punct()).unwrap_or(false);
                if joint_before && tok.is_punct() {
                    push_glued(trees, Tree { tok, spacing });
                } else {
                    trees.push(Tree { tok, spacing });
                }
            }
        }
        pending = next;
    }
    if stack.len() != 1 {
        return Err(());
    }
    let frame = stack.pop().unwrap_or_else(|| unreachable!());
    Ok(TokenStream(Rc::new(frame.trees)))
}
