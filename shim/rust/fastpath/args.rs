//! rustc's arguments as the native launcher reads them: shim/cargo/rustc_args.py's `FLAGS` table (generated
//! into tables.rs) read as its `_match` does, stricter wherever a spelling could be read two ways (the
//! caller delegates on any doubt).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// What the launcher does with one flag of the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Use {
    Ignore,      // recognised, its value skipped: it changes nothing the Python wrapper decides
    Delegate,    // its presence alone sends the call to the Python wrapper
    CrateName,
    CrateType,
    Codegen,
    Emit,
    OutDir,
    SearchPath,
    Target,
}

/// One row of rustc_args.FLAGS (generated into tables.rs by shim/cli/launcher.py): its spellings and
/// whether it takes a value.
pub struct Flag {
    pub names: &'static [&'static str],
    pub takes_value: bool,
}

pub use crate::tables::FLAGS;

/// What the launcher does with a flag, by its first name. A flag not named here, such as one added to the
/// Python table later, sends the call to Python.
pub fn usage(flag: &Flag) -> Use {
    match flag.names[0] {
        "--codegen" => Use::Codegen,
        "--crate-name" => Use::CrateName,
        "--crate-type" => Use::CrateType,
        "--emit" => Use::Emit,
        "--out-dir" => Use::OutDir,
        "--target" => Use::Target,
        "-L" => Use::SearchPath,
        "--allow" | "--cap-lints" | "--cfg" | "--check-cfg" | "--color" | "--crate-attr" | "--deny"
        | "--diagnostic-width" | "--edition" | "--env-set" | "--error-format" | "--extern" | "--forbid"
        | "--force-warn" | "--json" | "--pretty" | "--remap-path-prefix" | "--remap-path-scope" | "--sysroot"
        | "--unpretty" | "--verbose" | "--warn" | "-O" | "-Z" | "-g" | "-o" => Use::Ignore,
        _ => Use::Delegate, // --explain, --help, --print, --test, --version, -l, and what is new
    }
}

fn by_name(name: &[u8]) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.names.iter().any(|n| n.as_bytes() == name))
}

/// One flag with its value, or a word that is no flag (an input, or a flag the table lacks).
pub enum Token<'a> {
    Flag(&'static Flag, &'a [u8]),
    Word(&'a [u8]),
}

/// Why a call is not read here (the caller delegates with it).
pub type Doubt = &'static str;

/// Split `args` as rustc_args._match does; a value-taking flag with no value, or a `--flag=value` of a
/// flag that takes none, is a doubt (Python reads both, more loosely).
pub fn tokens<'a>(args: &[&'a OsStr]) -> Result<Vec<Token<'a>>, Doubt> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        let (found, attached) = if arg.starts_with(b"--") {
            match arg.iter().position(|&b| b == b'=') {
                Some(eq) => (by_name(&arg[..eq]), Some(&arg[eq + 1..])),
                None => (by_name(arg), None),
            }
        } else if let Some(f) = by_name(arg) {
            (Some(f), None)
        } else if arg.len() > 2 {
            match by_name(&arg[..2]) {
                Some(f) if f.takes_value => (Some(f), Some(&arg[2..])),
                _ => (None, None),
            }
        } else {
            (None, None)
        };
        let Some(f) = found else {
            out.push(Token::Word(arg));
            continue;
        };
        if !f.takes_value {
            if attached.is_some() {
                return Err("value given to a flag that takes none");
            }
            out.push(Token::Flag(f, b""));
        } else if let Some(value) = attached {
            out.push(Token::Flag(f, value));
        } else if i < args.len() {
            out.push(Token::Flag(f, args[i].as_bytes()));
            i += 1;
        } else {
            return Err("flag without its value");
        }
    }
    Ok(out)
}

/// What a plain library compile is made of: the fields the Python wrapper's decision and journal read.
#[derive(Default)]
pub struct Call<'a> {
    pub crate_name: Option<&'a [u8]>,
    pub extra_filename: Option<&'a [u8]>,
    pub out_dir: Option<&'a [u8]>,
    pub target: Option<&'a [u8]>,
    pub links: bool,
    pub input: Option<&'a [u8]>,
}

const LIBRARY_TYPES: &[&[u8]] = &[b"lib", b"rlib"];
const CRATE_SEARCH: &[&[u8]] = &[b"dependency=", b"crate="];

/// A library compile with nothing the Python wrapper would act on, or the doubt that sends it there.
pub fn read<'a>(args: &[&'a OsStr]) -> Result<Call<'a>, Doubt> {
    let mut call = Call::default();
    let (mut types, mut emit_link, mut emits, mut inputs) = (0, false, 0, 0);
    for token in tokens(args)? {
        let (f, value) = match token {
            Token::Flag(f, value) => (f, value),
            Token::Word(word) if word == b"-" => return Err("source on stdin"),
            Token::Word(word) if word.starts_with(b"-") => return Err("flag outside the table"),
            Token::Word(word) => {
                inputs += 1;
                call.input = Some(word);
                continue;
            }
        };
        match usage(f) {
            Use::Ignore => {}
            Use::Delegate => return Err(f.names[0]),
            Use::CrateName => call.crate_name = Some(value),
            Use::OutDir => call.out_dir = Some(value),
            Use::Target => call.target = Some(value),
            Use::CrateType => {
                for part in value.split(|&b| b == b',') {
                    if !LIBRARY_TYPES.contains(&part) {
                        return Err("crate type other than lib or rlib");
                    }
                    types += 1;
                }
            }
            Use::Emit => {
                for part in value.split(|&b| b == b',') {
                    let kind = part.split(|&b| b == b'=').next().unwrap_or(b"");
                    if kind.is_empty() || !kind.iter().all(|&b| b.is_ascii_lowercase() || b == b'-') {
                        return Err("emit kind not plainly spelled");
                    }
                    emits += 1;
                    emit_link |= kind == b"link";
                }
            }
            Use::Codegen => {
                let mut kv = value.splitn(2, |&b| b == b'=');
                let key = kv.next().unwrap_or(b"");
                if !key.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return Err("codegen option not plainly spelled");
                }
                if key == b"extra-filename" {
                    call.extra_filename = kv.next(); // rustc's rule: the last one given wins
                }
            }
            Use::SearchPath => {
                if !CRATE_SEARCH.iter().any(|kind| value.starts_with(kind)) {
                    return Err("native search path");
                }
            }
        }
    }
    if inputs != 1 {
        return Err(if inputs == 0 { "no input" } else { "several inputs" });
    }
    if types == 0 {
        return Err("no crate type");
    }
    call.links = emit_link || emits == 0;
    Ok(call)
}

/// `[A-Za-z0-9_]+`: what rustc accepts as a crate name, so it is one path component.
pub fn plain_name(word: &[u8]) -> bool {
    !word.is_empty() && word.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `-C extra-filename` as cargo writes it (`-<hash>`): part of one file name.
pub fn plain_suffix(word: &[u8]) -> bool {
    word.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}
