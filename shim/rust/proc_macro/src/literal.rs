//! `Literal`: every stable constructor with the real crate's token text (its escaping rules for strings,
//! characters and bytes, `.0` added to unsuffixed floats), `FromStr` (exactly one literal, a number possibly
//! negative, nothing around it), Display and Debug.

use std::fmt;
use std::str::FromStr;

use crate::tokens::{Sp, Tok};
use crate::{LexError, Literal, Span};

macro_rules! ints {
    ($($suffixed:ident $unsuffixed:ident $t:ident)*) => {$(
        pub fn $suffixed(n: $t) -> Literal {
            Literal::make(format!(concat!("{}", stringify!($t)), n))
        }
        pub fn $unsuffixed(n: $t) -> Literal {
            Literal::make(n.to_string())
        }
    )*};
}

#[derive(Clone, Copy)]
struct Escape {
    single_quote: bool,
    double_quote: bool,
    nonascii: bool,
}

fn escape_bytes(bytes: &[u8], opt: Escape) -> String {
    let mut out = String::new();
    if opt.nonascii {
        for &b in bytes {
            escape_byte(b, opt, &mut out);
        }
    } else {
        for chunk in bytes.utf8_chunks() {
            for ch in chunk.valid().chars() {
                if (ch == '\'' && !opt.single_quote) || (ch == '"' && !opt.double_quote) {
                    out.push(ch);
                } else {
                    out.extend(ch.escape_debug());
                }
            }
            for &b in chunk.invalid() {
                escape_byte(b, opt, &mut out);
            }
        }
    }
    out
}

fn escape_byte(b: u8, opt: Escape, out: &mut String) {
    if b == b'\0' {
        out.push_str("\\0");
    } else if (b == b'\'' && !opt.single_quote) || (b == b'"' && !opt.double_quote) {
        out.push(b as char);
    } else {
        out.extend(b.escape_ascii().map(char::from));
    }
}

impl Literal {
    fn make(text: String) -> Literal {
        Literal { text: text.into(), span: Span::call_site() }
    }

    ints! {
        u8_suffixed u8_unsuffixed u8
        u16_suffixed u16_unsuffixed u16
        u32_suffixed u32_unsuffixed u32
        u64_suffixed u64_unsuffixed u64
        u128_suffixed u128_unsuffixed u128
        usize_suffixed usize_unsuffixed usize
        i8_suffixed i8_unsuffixed i8
        i16_suffixed i16_unsuffixed i16
        i32_suffixed i32_unsuffixed i32
        i64_suffixed i64_unsuffixed i64
        i128_suffixed i128_unsuffixed i128
        isize_suffixed isize_unsuffixed isize
    }

    pub fn f32_unsuffixed(n: f32) -> Literal {
        assert!(n.is_finite(), "Invalid float literal {n}");
        let mut repr = n.to_string();
        if !repr.contains('.') {
            repr.push_str(".0");
        }
        Literal::make(repr)
    }
    pub fn f32_suffixed(n: f32) -> Literal {
        assert!(n.is_finite(), "Invalid float literal {n}");
        Literal::make(format!("{n}f32"))
    }
    pub fn f64_unsuffixed(n: f64) -> Literal {
        assert!(n.is_finite(), "Invalid float literal {n}");
        let mut repr = n.to_string();
        if !repr.contains('.') {
            repr.push_str(".0");
        }
        Literal::make(repr)
    }
    pub fn f64_suffixed(n: f64) -> Literal {
        assert!(n.is_finite(), "Invalid float literal {n}");
        Literal::make(format!("{n}f64"))
    }
    pub fn string(s: &str) -> Literal {
        let opt = Escape { single_quote: false, double_quote: true, nonascii: false };
        Literal::make(format!("\"{}\"", escape_bytes(s.as_bytes(), opt)))
    }
    pub fn character(c: char) -> Literal {
        let opt = Escape { single_quote: true, double_quote: false, nonascii: false };
        let mut buf = [0u8; 4];
        Literal::make(format!("'{}'", escape_bytes(c.encode_utf8(&mut buf).as_bytes(), opt)))
    }
    pub fn byte_character(b: u8) -> Literal {
        let opt = Escape { single_quote: true, double_quote: false, nonascii: true };
        Literal::make(format!("b'{}'", escape_bytes(&[b], opt)))
    }
    pub fn byte_string(bytes: &[u8]) -> Literal {
        let opt = Escape { single_quote: false, double_quote: true, nonascii: true };
        Literal::make(format!("b\"{}\"", escape_bytes(bytes, opt)))
    }
    pub fn c_string(s: &std::ffi::CStr) -> Literal {
        let opt = Escape { single_quote: false, double_quote: true, nonascii: false };
        Literal::make(format!("c\"{}\"", escape_bytes(s.to_bytes(), opt)))
    }
    pub fn span(&self) -> Span {
        self.span
    }
    pub fn set_span(&mut self, span: Span) {
        self.span = span;
    }
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
    pub(crate) fn from_text(text: &str, span: Span) -> Literal {
        Literal { text: text.into(), span }
    }

    /// The literal's kind, symbol and suffix, as the real Debug shows them.
    fn parts(&self) -> (String, &str, Option<&str>) {
        let t = self.text.trim_start_matches('-');
        let (prefix, body) = match t.find(|c| c == '"' || c == '\'') {
            Some(q) if !t.as_bytes()[0].is_ascii_digit() => (&t[..q], &t[q..]),
            _ => ("", t),
        };
        if body.starts_with('"') || body.starts_with('\'') || prefix.contains('r') {
            let hashes = body.chars().take_while(|c| *c == '#').count();
            let quote = body[hashes..].chars().next().unwrap_or('"');
            let end = body.rfind(quote).unwrap_or(0);
            let symbol = body.get(hashes + 1..end).unwrap_or("");
            let suffix = body.get(end + 1 + hashes..).filter(|s| !s.is_empty());
            let base = match (prefix.trim_end_matches('r'), quote) {
                ("b", '\'') => "Byte", ("", '\'') => "Char", ("b", _) => "ByteStr", ("c", _) => "CStr", _ => "Str",
            };
            let kind = if prefix.ends_with('r') { format!("{base}Raw({hashes})") } else { base.to_string() };
            return (kind, symbol, suffix);
        }
        let (end, float) = number_end(t);
        let symbol = &self.text[..self.text.len() - t.len() + end];
        let suffix = Some(&t[end..]).filter(|s| !s.is_empty());
        ((if float { "Float" } else { "Integer" }).to_string(), symbol, suffix)
    }
}

/// Where a number's suffix starts, and whether it is a float token (a `.` or an exponent; `1f32` is an
/// integer token with a suffix, as in rustc's lexer).
fn number_end(t: &str) -> (usize, bool) {
    let b = t.as_bytes();
    let digits = |mut i: usize, ok: fn(u8) -> bool| {
        while i < b.len() && (ok(b[i]) || b[i] == b'_') {
            i += 1;
        }
        i
    };
    if b.len() > 1 && b[0] == b'0' && matches!(b[1], b'x' | b'o' | b'b') {
        return (digits(2, |c| c.is_ascii_hexdigit()), false);
    }
    let mut i = digits(0, |c| c.is_ascii_digit());
    let mut float = false;
    if i < b.len() && b[i] == b'.' {
        float = true;
        i = digits(i + 1, |c| c.is_ascii_digit());
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let sign = usize::from(i + 1 < b.len() && matches!(b[i + 1], b'+' | b'-'));
        let end = digits(i + 1 + sign, |c| c.is_ascii_digit());
        if end > i + 1 + sign {
            float = true;
            i = end;
        }
    }
    (i, float)
}

impl FromStr for Literal {
    type Err = LexError;
    fn from_str(src: &str) -> Result<Literal, LexError> {
        if src.trim() != src || src.starts_with("//") || src.starts_with("/*") {
            return Err(LexError);
        }
        let stream = crate::lexer::parse(src).map_err(|()| LexError)?;
        let span = Span::call_site();
        match &stream.0[..] {
            [lit] => match &lit.tok {
                Tok::Lit { text, .. } if text.len() == src.len() => Ok(Literal::from_text(text, span)),
                _ => Err(LexError),
            },
            [minus, lit] if minus.spacing == Sp::JointHidden => match (&minus.tok, &lit.tok) {
                (Tok::Op { text: "-", .. }, Tok::Lit { text, .. })
                    if text.starts_with(|c: char| c.is_ascii_digit()) && text.len() + 1 == src.len() =>
                {
                    Ok(Literal::from_text(src, span))
                }
                _ => Err(LexError),
            },
            _ => Err(LexError),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, symbol, suffix) = self.parts();
        f.debug_struct("Literal")
            .field("kind", &format_args!("{kind}"))
            .field("symbol", &symbol)
            .field("suffix", &suffix)
            .field("span", &self.span)
            .finish()
    }
}
