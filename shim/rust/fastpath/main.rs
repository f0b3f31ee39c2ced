//! cratecage's native launcher: what cargo runs as RUSTC_WRAPPER (`cratecage <rustc> <args>`).
//!
//! Why: most rustc calls of a build are plain library compiles that the Python wrapper
//! (shim/intercept/wrapper.py) only journals and exec's, and starting Python costs more than the rest of
//! that work. This program decides those calls itself and hands every other call, unchanged (same argv,
//! environment, cwd and file descriptors), to the Python launcher written beside it (`<path>-py`, compiled
//! in as CRATECAGE_PYTHON_LAUNCHER). The rule is **delegate unless provably a plain pass-through**: a
//! library compile (`--crate-type` lib/rlib only) with no flag, variable or spelling the Python wrapper would
//! act on (`decide`), so a mistake here can only cost speed. A host library (linked, no `--target`) is
//! journaled first, byte for byte as shim/cargo/journal.py does (journal.rs).
//!
//! `cratecage --fastpath-dry-run <rustc> <args>` prints the decision instead of exec'ing (NUL-separated:
//! decision, reason, journal path written or empty, then the argv it would exec);
//! `cratecage --fastpath-tables` prints its tables. Both are for tests/intercept/test_fastpath.py, which
//! compares every decision with the Python wrapper's. Built by shim/cli/launcher.py (std only), which
//! generates the tables the Python side defines (`mod tables`).

mod args;
mod journal;
/// The Python side's tables, generated at build time by shim/cli/launcher.py (`tables_source`):
/// rustc_args.FLAGS, wrapper.CREDENTIAL_WORDS and KEY_QUALIFIERS (`credential_name`), env.COMPILE_ENV.
mod tables {
    use crate::args::Flag;
    include!(env!("CRATECAGE_FASTPATH_TABLES"));
}

use std::env;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

use tables::{CREDENTIAL_WORDS, KEY_QUALIFIERS};

const PYTHON_LAUNCHER: &str = env!("CRATECAGE_PYTHON_LAUNCHER");
const DRY_RUN: &str = "--fastpath-dry-run";
const TABLES: &str = "--fastpath-tables";

/// Variables whose presence makes the Python wrapper do more than exec: a package with a build script
/// (OUT_DIR: its output may confine the compile), a compile started by a build script (classify: probe),
/// an inner wrapper; and the trace, when not empty (the Python wrapper's test).
const DELEGATING_ENV: &[&str] = &["OUT_DIR", "CARGO_CFG_TARGET_ARCH", "CRATECAGE_WRAPPER"];
const TRACE_ENV: &str = "CRATECAGE_TRACE";

enum Decision {
    /// exec rustc as given; the journal entry written first, if any
    Pass(Option<Vec<u8>>),
    /// exec the Python launcher with the same argv, for this reason
    Delegate(&'static str),
}

/// rustc_args._is_rustc_name
fn is_rustc_name(word: &[u8]) -> bool {
    let base = &word[word.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
    let stem = base.strip_suffix(b".exe").unwrap_or(base);
    stem == b"rustc" || stem.starts_with(b"rustc-") || stem.starts_with(b"rustc.")
}

/// wrapper.credential_name for an ASCII name (a name that is not ASCII is delegated before this).
fn credential_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split('_').collect();
    words.iter().any(|w| CREDENTIAL_WORDS.contains(w))
        || (words.contains(&"KEY") && words.iter().any(|w| KEY_QUALIFIERS.contains(w)))
}

fn environment_doubt() -> Option<&'static str> {
    for (name, value) in env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.is_ascii() && !n.is_empty()) else {
            return Some("variable name not plain ASCII");
        };
        if let Some(found) = DELEGATING_ENV.iter().find(|v| **v == name) {
            return Some(found);
        }
        if name == TRACE_ENV && !value.is_empty() {
            return Some(TRACE_ENV);
        }
        if credential_name(name) {
            return Some("credential variable");
        }
    }
    None
}

fn decide(argv: &[OsString]) -> Decision {
    let Some(program) = argv.first() else { return Decision::Delegate("no program") };
    let program = program.as_bytes();
    if program.starts_with(b"-") || !is_rustc_name(program) {
        return Decision::Delegate("not rustc alone");
    }
    if let Some(why) = environment_doubt() {
        return Decision::Delegate(why);
    }
    let rest: Vec<&OsStr> = argv[1..].iter().map(|a| a.as_os_str()).collect();
    if rest.iter().any(|a| a.as_bytes().starts_with(b"@")) {
        return Decision::Delegate("argfile");
    }
    let call = match args::read(&rest) {
        Ok(call) => call,
        Err(why) => return Decision::Delegate(why),
    };
    if call.input.map_or(true, |input| input.is_empty()) {
        return Decision::Delegate("empty input");
    }
    if !call.links || call.target.is_some() {
        return Decision::Pass(None); // classify: other (cargo check, a target library): no journal
    }
    let (Some(name), Some(out_dir)) = (call.crate_name, call.out_dir) else {
        return Decision::Delegate("host library without a crate name or out-dir");
    };
    let extra = call.extra_filename.unwrap_or(b"");
    if !args::plain_name(name) || !args::plain_suffix(extra) || out_dir.is_empty() {
        return Decision::Delegate("host library named unusually");
    }
    let Ok(cwd) = env::current_dir() else { return Decision::Delegate("no working directory") };
    let cwd = cwd.as_os_str().as_bytes();
    let path = journal::entry_path(cwd, out_dir, name, extra);
    let text = journal::entry_text(cwd, &rest, |name| env::var_os(name));
    match journal::write(&path, &text) {
        Ok(()) => Decision::Pass(Some(path)),
        Err(_) => Decision::Delegate("journal not written"),
    }
}

fn print_tables() {
    let mut out = String::new();
    for flag in args::FLAGS {
        out += &format!("flag {} {}\n", flag.names.join(","), flag.takes_value);
    }
    out += &format!("credential-words {}\n", CREDENTIAL_WORDS.join(","));
    out += &format!("key-qualifiers {}\n", KEY_QUALIFIERS.join(","));
    out += &format!("compile-env {}\n", tables::COMPILE_ENV.join(","));
    out += &format!("python-launcher {}\n", PYTHON_LAUNCHER);
    print!("{out}");
}

fn main() {
    let mut argv: Vec<OsString> = env::args_os().skip(1).collect();
    if argv.len() == 1 && argv[0] == TABLES {
        return print_tables();
    }
    let dry = argv.first().is_some_and(|a| a == DRY_RUN);
    if dry {
        argv.remove(0);
    }
    let decision = decide(&argv);
    let (what, why, journal, cmd) = match decision {
        Decision::Pass(journal) => ("pass-through", "", journal.unwrap_or_default(), argv.clone()),
        Decision::Delegate(why) => {
            let mut cmd = vec![OsString::from(PYTHON_LAUNCHER)];
            cmd.extend(argv.iter().cloned());
            ("delegate", why, Vec::new(), cmd)
        }
    };
    if dry {
        let mut fields: Vec<&[u8]> = vec![what.as_bytes(), why.as_bytes(), &journal];
        fields.extend(cmd.iter().map(|a| a.as_bytes()));
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(&fields.join(&b'\0')).and_then(|()| stdout.flush());
        return;
    }
    let err = Command::new(&cmd[0]).args(&cmd[1..]).exec();
    if what == "pass-through" {
        // rustc did not start: the Python wrapper says why, in its words
        cannot_start(Command::new(PYTHON_LAUNCHER).args(&argv).exec());
    }
    cannot_start(err);
}

fn cannot_start(err: io::Error) -> ! {
    eprintln!(
        "cratecage: cannot start the Python launcher {PYTHON_LAUNCHER}: {err}; reinstall cratecage \
         (`python -m shim.cli.launcher <path>` writes both launchers)"
    );
    exit(2);
}
