//! `Command`: what to run, its environment edits and stdio, and the spawn request sent to the host.

use core::fmt;
use real::borrow::ToOwned;
use real::collections::btree_map::{self, BTreeMap};
use real::ffi::{OsStr, OsString};
use real::io;
use real::path::{Path, PathBuf};
use real::vec::Vec;

use super::child::Child;
use super::status::{ExitStatus, Output};
use super::stdio::{route, Slot, Stdio};
use crate::cratecage_ffi as ffi;
use crate::cratecage_host as host;

/// A process builder, as std's: program, arguments, environment edits, directory and stdio.
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env_clear: bool,
    // None = removed; std's own representation, so get_envs() answers exactly as std's does.
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

/// The stdio modes the host gets when the program set none: [stdin, stdout, stderr].
const SPAWN_DEFAULTS: [u8; 3] = [ffi::STDIO_INHERIT, ffi::STDIO_INHERIT, ffi::STDIO_INHERIT];
const OUTPUT_DEFAULTS: [u8; 3] = [ffi::STDIO_NULL, ffi::STDIO_PIPED, ffi::STDIO_PIPED];

impl Command {
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    pub fn env<K, V>(&mut self, key: K, val: V) -> &mut Command
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.insert(key.as_ref().to_owned(), Some(val.as_ref().to_owned()));
        self
    }

    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, val) in vars {
            self.env(key, val);
        }
        self
    }

    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        let key = key.as_ref();
        if self.env_clear {
            self.env.remove(key);
        } else {
            self.env.insert(key.to_owned(), None);
        }
        self
    }

    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.stdin = Some(cfg.into());
        self
    }

    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.stdout = Some(cfg.into());
        self
    }

    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.stderr = Some(cfg.into());
        self
    }

    /// Starts the child; unset streams are inherited.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.start(SPAWN_DEFAULTS)
    }

    /// Runs the child to completion, collecting stdout and stderr (unless set otherwise); stdin is null.
    pub fn output(&mut self) -> io::Result<Output> {
        self.start(OUTPUT_DEFAULTS)?.wait_with_output()
    }

    /// Runs the child to completion with inherited streams.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.start(SPAWN_DEFAULTS)?.wait()
    }

    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    pub fn get_args(&self) -> CommandArgs<'_> {
        CommandArgs { inner: self.args.iter() }
    }

    pub fn get_envs(&self) -> CommandEnvs<'_> {
        CommandEnvs { inner: self.env.iter() }
    }

    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// Applies `defaults` to unset streams, asks the host to start the child, connects its streams.
    fn start(&mut self, defaults: [u8; 3]) -> io::Result<Child> {
        let stdin = route(self.stdin.as_mut(), defaults[0], Slot::Stdin)?;
        let stdout = route(self.stdout.as_mut(), defaults[1], Slot::Stdout)?;
        let stderr = route(self.stderr.as_mut(), defaults[2], Slot::Stderr)?;
        let request = self.encode([stdin.mode(), stdout.mode(), stderr.mode()])?;
        let handle = host::spawn(&request)?;
        Child::connect(handle, [stdin, stdout, stderr])
    }

    /// The spawn request, as shim/host/abi.py's `decode_request` reads it.
    fn encode(&self, modes: [u8; 3]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        record(&mut out, ffi::TAG_PROGRAM, checked(&self.program)?);
        for arg in &self.args {
            record(&mut out, ffi::TAG_ARG, checked(arg)?);
        }
        if self.env_clear {
            record(&mut out, ffi::TAG_ENV_CLEAR, &[]);
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => {
                    let mut pair = checked(key)?.to_vec();
                    pair.push(0);
                    pair.extend_from_slice(checked(value)?);
                    record(&mut out, ffi::TAG_ENV_SET, &pair);
                }
                None => record(&mut out, ffi::TAG_ENV_REMOVE, checked(key)?),
            }
        }
        if let Some(cwd) = &self.cwd {
            // Relative to this process's current directory, as natively: the host knows only the package
            // directory, where the script starts (env.rs) but need not still be.
            let cwd = if cwd.is_relative() { real::env::current_dir()?.join(cwd) } else { cwd.clone() };
            record(&mut out, ffi::TAG_CWD, checked(cwd.as_os_str())?);
        }
        for (tag, mode) in [ffi::TAG_STDIN, ffi::TAG_STDOUT, ffi::TAG_STDERR].into_iter().zip(modes) {
            record(&mut out, tag, &[mode]);
        }
        Ok(out)
    }
}

fn record(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// The bytes of a string for the request; NUL is refused as std refuses it.
fn checked(text: &OsStr) -> io::Result<&[u8]> {
    let raw = text.as_encoded_bytes();
    if raw.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "nul byte found in provided data"));
    }
    Ok(raw)
}

/// Like std's on unix: `cd "dir" && env -u K K2="v" "program" "arg"`; `{:#?}` shows the fields.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            let mut s = f.debug_struct("Command");
            s.field("program", &self.program).field("args", &self.args);
            if self.env_clear || !self.env.is_empty() {
                s.field("env_clear", &self.env_clear).field("env", &self.env);
            }
            for (name, value) in [("stdin", &self.stdin), ("stdout", &self.stdout), ("stderr", &self.stderr)] {
                if value.is_some() {
                    s.field(name, value);
                }
            }
            if self.cwd.is_some() {
                s.field("cwd", &self.cwd);
            }
            return s.finish();
        }
        if let Some(cwd) = &self.cwd {
            write!(f, "cd {:?} && ", cwd)?;
        }
        if self.env_clear {
            write!(f, "env -i ")?;
        } else if self.env.values().any(Option::is_none) {
            write!(f, "env ")?;
            for (key, _) in self.env.iter().filter(|(_, v)| v.is_none()) {
                write!(f, "-u {} ", key.to_string_lossy())?;
            }
        }
        for (key, value) in &self.env {
            if let Some(value) = value {
                write!(f, "{}={:?} ", key.to_string_lossy(), value)?;
            }
        }
        write!(f, "{:?}", self.program)?;
        for arg in &self.args {
            write!(f, " {:?}", arg)?;
        }
        Ok(())
    }
}

/// Iterator over a `Command`'s arguments (not the program).
pub struct CommandArgs<'a> {
    inner: core::slice::Iter<'a, OsString>,
}

impl<'a> Iterator for CommandArgs<'a> {
    type Item = &'a OsStr;
    fn next(&mut self) -> Option<&'a OsStr> {
        self.inner.next().map(OsString::as_os_str)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<'a> ExactSizeIterator for CommandArgs<'a> {
    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl<'a> fmt::Debug for CommandArgs<'a> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.inner.clone()).finish()
    }
}

/// Iterator over the environment edits of a `Command`: `(key, Some(value))` set, `(key, None)` removed.
pub struct CommandEnvs<'a> {
    inner: btree_map::Iter<'a, OsString, Option<OsString>>,
}

impl<'a> Iterator for CommandEnvs<'a> {
    type Item = (&'a OsStr, Option<&'a OsStr>);
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<'a> ExactSizeIterator for CommandEnvs<'a> {
    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl<'a> fmt::Debug for CommandEnvs<'a> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.inner.clone()).finish()
    }
}
