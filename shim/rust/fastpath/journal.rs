//! The journal entry of a host library, byte for byte as shim/cargo/journal.py `record` writes it, at the
//! path shim/cargo/layout.py gives (`state_dir` by the profile's build lock, else by the out-dir's shape).
//! Paths are handled as Python's posixpath handles them (`join`, `dirname`, `basename`, `normpath`).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::tables::COMPILE_ENV;

const MAGIC: &[u8] = b"cratecage-journal-2";
const JOURNAL_DIR: &[u8] = b"journal";
const STATE_DIR: &[u8] = b"cratecage";
const PROFILE_MARKERS: &[&[u8]] = &[b".cargo-lock", b".cargo-build-lock"];
const MAX_WALK: usize = 8;

/// posixpath.join(a, b)
fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if b.starts_with(b"/") {
        return b.to_vec();
    }
    let mut out = a.to_vec();
    if !(a.is_empty() || a.ends_with(b"/")) {
        out.push(b'/');
    }
    out.extend_from_slice(b);
    out
}

fn split_at_last_slash(p: &[u8]) -> usize {
    p.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)
}

/// posixpath.dirname(p)
fn dirname(p: &[u8]) -> &[u8] {
    let head = &p[..split_at_last_slash(p)];
    if !head.is_empty() && !head.iter().all(|&b| b == b'/') {
        let end = head.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        return &head[..end];
    }
    head
}

/// posixpath.basename(p)
fn basename(p: &[u8]) -> &[u8] {
    &p[split_at_last_slash(p)..]
}

/// posixpath.normpath(p)
fn normpath(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let initial = if p.starts_with(b"/") {
        if p.starts_with(b"//") && !p.starts_with(b"///") { 2 } else { 1 }
    } else {
        0
    };
    let mut comps: Vec<&[u8]> = Vec::new();
    for comp in p.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." {
            continue;
        }
        if comp != b".." || (initial == 0 && comps.is_empty()) || comps.last() == Some(&&b".."[..]) {
            comps.push(comp);
        } else if !comps.is_empty() {
            comps.pop();
        }
    }
    let mut out = vec![b'/'; initial];
    out.extend_from_slice(&comps.join(&b'/'));
    if out.is_empty() { b".".to_vec() } else { out }
}

fn up(p: &[u8], levels: usize) -> &[u8] {
    (0..levels).fold(p, |p, _| dirname(p))
}

fn exists(p: &[u8]) -> bool {
    fs::metadata(OsStr::from_bytes(p)).is_ok()
}

/// layout.locked_profile: the nearest directory at or above `out` (MAX_WALK looked at) with cargo's lock.
fn locked_profile(out: &[u8]) -> Option<&[u8]> {
    let mut here = out;
    for _ in 0..MAX_WALK {
        if PROFILE_MARKERS.iter().any(|m| exists(&join(here, m))) {
            return Some(here);
        }
        let parent = dirname(here);
        if parent == here {
            break;
        }
        here = parent;
    }
    None
}

/// layout.profile_dir of a normalised absolute out-dir.
fn profile_dir(out: &[u8]) -> &[u8] {
    if let Some(locked) = locked_profile(out) {
        return locked;
    }
    if basename(out) == b"out" && basename(up(dirname(out), 2)) == b"build" {
        return up(out, 4); // the new layout: out -> <H> -> <pkg> -> build -> profile
    }
    let parent = dirname(out);
    if basename(parent) == b"build" { dirname(parent) } else { parent }
}

/// journal.entry_path of the rlib `lib<crate><extra>.rlib` that `--out-dir` (relative to `cwd`) gets.
pub fn entry_path(cwd: &[u8], out_dir: &[u8], crate_name: &[u8], extra: &[u8]) -> Vec<u8> {
    let out = normpath(&join(cwd, out_dir));
    let rlib = join(&out, &[b"lib", crate_name, extra, b".rlib"].concat());
    let state = join(dirname(profile_dir(dirname(&rlib))), STATE_DIR);
    join(&join(&state, JOURNAL_DIR), &[basename(&rlib), b".args"].concat())
}

/// The entry's text: `MAGIC \0 cwd \0 n \0 NAME=value * n \0 argv...` (env.recorded's variables).
pub fn entry_text(cwd: &[u8], args: &[&OsStr], var: impl Fn(&str) -> Option<OsString>) -> Vec<u8> {
    let env: Vec<Vec<u8>> = COMPILE_ENV
        .iter()
        .filter_map(|name| var(name).map(|v| [name.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    let count = env.len().to_string().into_bytes();
    let mut parts: Vec<&[u8]> = vec![MAGIC, cwd, &count];
    parts.extend(env.iter().map(|v| v.as_slice()));
    parts.extend(args.iter().map(|a| a.as_bytes()));
    parts.join(&b'\0')
}

/// journal.record's write: nothing when the entry already says the same, else files.atomic_write
/// (parents made, `.<name>.<pid>.tmp` beside it, mode 0644, replaced into place).
pub fn write(path: &[u8], text: &[u8]) -> io::Result<()> {
    let target = Path::new(OsStr::from_bytes(path));
    let mut old = Vec::with_capacity(text.len() + 1);
    let same = fs::File::open(target)
        .and_then(|file| file.take(text.len() as u64 + 1).read_to_end(&mut old))
        .is_ok_and(|_| old == text);
    if same {
        return Ok(());
    }
    let dir = dirname(path);
    fs::create_dir_all(OsStr::from_bytes(dir))?;
    let tmp_name = [b".", basename(path), b".", std::process::id().to_string().as_bytes(), b".tmp"].concat();
    let tmp = OsString::from_vec(join(dir, &tmp_name));
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    file.write_all(text)?;
    drop(file);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&tmp, target)
}
