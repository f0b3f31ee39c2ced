//! `Span`: a pair of span ids (shim/macro/PROTOCOL.md, "Span ids"): `location` says where the span is,
//! `hygiene` how names resolve. 0 is the call site, 1 the mixed site, `2 + k` entry `k` of the request's span
//! table, which answers the location queries. `start()`/`end()`/`join()` make spans the trampoline never
//! sent: they get new table entries here (answering queries in the guest) and map back to the call site.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanInfo {
    pub file: String,
    pub local_file: Option<String>,
    pub start_line: u32,
    pub start_column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub byte_start: u32,
    pub byte_end: u32,
    pub source_text: Option<String>,
}

thread_local! {
    /// The request's span table; entry 0 describes the call site.
    static TABLE: RefCell<Vec<SpanInfo>> = const { RefCell::new(Vec::new()) };
}

/// Replaces the span table (a new request).
pub fn set_table(table: Vec<SpanInfo>) {
    TABLE.with(|t| *t.borrow_mut() = table);
}

fn info(location: u32) -> SpanInfo {
    // Ids 0 and 1 answer like a call-site span of the invocation: the table's entry 0.
    let index = location.saturating_sub(2) as usize;
    TABLE.with(|t| t.borrow().get(index).cloned()).unwrap_or_default()
}

fn derive(info: SpanInfo) -> u32 {
    TABLE.with(|t| {
        let mut table = t.borrow_mut();
        table.push(info);
        table.len() as u32 + 1
    })
}

#[derive(Copy, Clone)]
pub struct Span {
    pub(crate) location: u32,
    pub(crate) hygiene: u32,
}

impl Span {
    pub fn call_site() -> Span {
        Span { location: 0, hygiene: 0 }
    }
    pub fn mixed_site() -> Span {
        Span { location: 1, hygiene: 1 }
    }
    pub fn def_site() -> Span {
        Span::mixed_site()
    }
    pub fn resolved_at(&self, other: Span) -> Span {
        Span { location: self.location, hygiene: other.hygiene }
    }
    pub fn located_at(&self, other: Span) -> Span {
        Span { location: other.location, hygiene: self.hygiene }
    }
    pub fn source_text(&self) -> Option<String> {
        info(self.location).source_text
    }
    pub fn start(&self) -> Span {
        let i = info(self.location);
        let at = SpanInfo { end_line: i.start_line, end_column: i.start_column, byte_end: i.byte_start,
                            source_text: None, ..i };
        Span { location: derive(at), hygiene: self.hygiene }
    }
    pub fn end(&self) -> Span {
        let i = info(self.location);
        let at = SpanInfo { start_line: i.end_line, start_column: i.end_column, byte_start: i.byte_end,
                            source_text: None, ..i };
        Span { location: derive(at), hygiene: self.hygiene }
    }
    /// One-based, as the real `Span::line`.
    pub fn line(&self) -> usize {
        info(self.location).start_line as usize
    }
    /// One-based, as the real `Span::column` (the wire's columns are zero-based).
    pub fn column(&self) -> usize {
        info(self.location).start_column as usize + 1
    }
    pub fn file(&self) -> String {
        info(self.location).file
    }
    pub fn local_file(&self) -> Option<PathBuf> {
        info(self.location).local_file.map(PathBuf::from)
    }
    pub fn byte_range(&self) -> Range<usize> {
        let i = info(self.location);
        i.byte_start as usize..i.byte_end as usize
    }
    /// Unstable in the real crate (proc-macro2 calls it on a nightly host): both spans in one file.
    pub fn join(&self, other: Span) -> Option<Span> {
        let (a, b) = (info(self.location), info(other.location));
        if a.file != b.file {
            return None;
        }
        let (first, last) = if a.byte_start <= b.byte_start { (a, b) } else { (b, a) };
        let joined = SpanInfo { end_line: last.end_line, end_column: last.end_column,
                                byte_end: last.byte_end.max(first.byte_end), source_text: None, ..first };
        Some(Span { location: derive(joined), hygiene: self.hygiene })
    }
    pub fn parent(&self) -> Option<Span> {
        None
    }
    pub fn source(&self) -> Span {
        *self
    }
    pub fn eq(&self, other: &Span) -> bool {
        self.location == other.location && self.hygiene == other.hygiene
    }
    pub(crate) fn ids(&self) -> (u32, u32) {
        (self.location, self.hygiene)
    }
    pub(crate) fn from_ids(location: u32, hygiene: u32) -> Span {
        Span { location, hygiene }
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = info(self.location);
        write!(f, "#{} bytes({}..{})", self.hygiene, i.byte_start, i.byte_end)
    }
}
