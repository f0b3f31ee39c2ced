"""The std facade end to end: built by shim.toolchain.facade with the selected toolchain, small guests compiled
against it for wasm32-wasip1 and linked as shim/build/script.py links a build script (an 8 MiB stack and
`facade.LINK_ARGS`), run under real wasmtime with WASI, shim.host.process, shim.host.observe and the
runner's preopens (the plumbing is tests/guests.py); and real build-dependency crates from crates.io compiled
against it unchanged.

Every spawn first asks shim.host.probe whether it runs cargo's compiler; the guests that do (version_check,
rustc_version, autocfg) get the real probe: rustc runs on the host, confined.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

from shim.errors import ToolchainError
from shim.host import abi, probe
from shim.host.context import RunContext
from shim.toolchain import compiler as toolchain
from shim.toolchain import facade

from conftest import scrubbed
from guests import (Compiler, GuestTrapped, Sandbox, cache_env, compiler, facade_rlib,  # noqa: F401 (fixtures)
                    package_with_files, run, rustup_wasm_toolchain, sandbox, tc)

# -- building the facade ---------------------------------------------------------------------------------

def test_the_facade_is_built_once_per_toolchain_and_source_hash(tc: toolchain.Toolchain, facade_rlib: Path,
                                                                 cache_env: dict[str, str]) -> None:
    digest = facade.source_hash(facade.build_flags(tc))
    assert facade_rlib == facade.facade_dir(tc, cache_env) / digest / "libstd.rlib"
    cache = Path(cache_env["CRATECAGE_CACHE_DIR"])
    assert facade_rlib.parent.parent == cache / "toolchains" / tc.compiler.key / "facade"
    mtime = facade_rlib.stat().st_mtime_ns
    assert facade.facade_rlib(tc, cache_env) == facade_rlib and facade_rlib.stat().st_mtime_ns == mtime
    names = {p.relative_to(facade.FACADE_DIR / "src").as_posix() for p in facade.facade_sources()}
    assert names >= {"lib.rs", "ffi.rs", "host.rs", "env.rs", "stat.rs", "realpath.rs", "process.rs",
                     "process/command.rs", "env/path_var.rs", "thread.rs", "thread/scoped.rs"}


def test_concurrent_builders_share_one_build(tc: toolchain.Toolchain, tmp_path: Path) -> None:
    env = {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(tmp_path)}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: facade.facade_rlib(tc, env), range(3)))
    assert len(set(paths)) == 1 and paths[0].is_file()
    built = [p.name for p in facade.facade_dir(tc, env).iterdir() if not p.name.endswith(".lock")]
    assert built == [paths[0].parent.name]


def test_a_changed_source_builds_anew_and_errors_name_rustc_s_first_error(
        tc: toolchain.Toolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, facade_rlib: Path) -> None:
    copy = tmp_path / "facade"
    shutil.copytree(facade.FACADE_DIR, copy)
    monkeypatch.setattr(facade, "FACADE_DIR", copy)
    env = {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(tmp_path / "cache")}
    with (copy / "src" / "env.rs").open("a") as fh:
        fh.write("\nfn broken() -> u8 { \"no\" }\n")
    assert facade.source_hash(facade.build_flags(tc)) != facade_rlib.parent.name
    with pytest.raises(ToolchainError, match=r"std facade.*error\[E0308\]: mismatched types"):
        facade.facade_rlib(tc, env)
    assert [p for p in facade.facade_dir(tc, env).iterdir() if not p.name.endswith(".lock")] == []


def test_the_import_table_mirrors_abi_py() -> None:
    ffi = (facade.FACADE_DIR / "src" / "ffi.rs").read_text()
    assert f'#[link(wasm_import_module = "{abi.IMPORT_MODULE}")]' in ffi
    declared = {name: params.count(":") for name, params in re.findall(r"pub fn (\w+)\(([^)]*)\) -> i32;", ffi)}
    assert declared == {name: params for name, (params, _) in abi.ALL_IMPORTS.items()}
    assert list(abi.ALL_IMPORTS) == [*abi.IMPORTS, *abi.OBSERVE_IMPORTS, *abi.NET_IMPORTS, *abi.FILE_IMPORTS] == list(declared)
    constants = dict(re.findall(r"pub const (\w+): \w+ = (-?\d+);", ffi))
    assert constants and all(int(value) == getattr(abi, name) for name, value in constants.items())


# -- guests ----------------------------------------------------------------------------------------------

DENIED = r"""
use std::process::{Command, Stdio};
fn main() {
    let results = [
        ("status", Command::new("/bin/sh").arg("-c").arg("true").status().map(|_| ())),
        ("output", Command::new("/bin/sh").output().map(|_| ())),
        ("spawn", Command::new("/bin/sh").stdin(Stdio::piped()).spawn().map(|_| ())),
    ];
    for (what, result) in results {
        let err = result.unwrap_err();
        println!("{}\t{:?}\t{}", what, err.kind(), err.to_string().replace('\n', "\\n"));
    }
}
"""


def test_a_denied_spawn_is_permission_denied_with_the_host_s_message(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("denied", DENIED))
    assert ran.code == 0, ran.stderr
    assert [(what, kind) for what, kind, _ in ran.lines()] == [
        ("status", "PermissionDenied"), ("output", "PermissionDenied"), ("spawn", "PermissionDenied")]
    for _, _, message in ran.lines():
        assert message.startswith("cratecage: build script of guest 0.1.0: process-spawn denied: /bin/sh")
        assert message.endswith('process-spawn = { action = "permit", programs = ["/bin/sh"] }')
    # the same request three times is one denial
    assert [(d.capability, d.target) for d in ran.ctx.denials] == [("process-spawn", "/bin/sh")]


QUESTION_MARK = r"""
fn main() -> std::io::Result<()> {
    std::process::Command::new("pkg-config").arg("--libs").arg("zlib").status()?;
    Ok(())
}
"""


def test_question_mark_on_a_denial_fails_main_with_the_message(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("qmark", QUESTION_MARK))
    assert ran.code == 1
    assert "PermissionDenied" in ran.stderr and "cratecage: build script of guest" in ran.stderr
    assert ran.ctx.denials[0].target == "pkg-config"


EXIT = r"""
use std::process::{exit, ExitCode, Termination};
fn main() -> ExitCode {
    if std::env::var_os("EXIT").is_some() {
        exit(5);
    }
    ExitCode::from(7).report()
}
"""


def test_exit_exit_code_and_termination_are_the_real_std_s(compiler: Compiler, sandbox: Sandbox) -> None:
    wasm = compiler.wasm("exits", EXIT)
    assert (sandbox.run(wasm).code, sandbox.run(wasm, EXIT="1").code) == (7, 5)


DEBUG = r"""
use std::process::Command;
fn main() {
    let mut a = Command::new("cc");
    a.arg("-c").args(["x y.c", "-o"]).arg("q\"uote").env("CFLAGS", "-O2").env_remove("CC").current_dir("/src");
    let mut b = Command::new("/usr/bin/ar");
    b.env("A", "1").env_clear().env("B", "2").env_remove("A");
    for cmd in [&a, &b, &Command::new("plain")] {
        println!("{:?}", cmd);
        println!("{:?} {:?} {:?}", cmd.get_program(), cmd.get_args().collect::<Vec<_>>(), cmd.get_current_dir());
        println!("{:?} len={}", cmd.get_envs().collect::<Vec<_>>(), cmd.get_envs().len());
    }
}
"""


def test_command_debug_and_getters_match_std(compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("debug", DEBUG))
    native = run([str(compiler.native("debug", DEBUG))])
    assert ran.stdout == native
    assert ran.stdout.splitlines()[0] == 'cd "/src" && env -u CC CFLAGS="-O2" "cc" "-c" "x y.c" "-o" "q\\"uote"'


TEMP_DIR = r"""
fn main() {
    let dir = std::env::temp_dir();
    std::fs::write(dir.join("made-in-guest.txt"), "hi").unwrap();
    println!("{}", dir.display());
    println!("{}", std::env::var("OUT_DIR").unwrap());
}
"""


def test_temp_dir_is_the_run_s_temp_dir(compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("tempdir", TEMP_DIR))
    assert ran.stdout.splitlines() == [ran.ctx.tmp_dir, ran.ctx.out_dir]
    assert (Path(ran.ctx.tmp_dir) / "made-in-guest.txt").read_text() == "hi"


DEFAULTS = r"""
use std::process::{Command, Stdio};
fn main() {
    let _ = Command::new("/bin/true").spawn();
    let _ = Command::new("/bin/true").status();
    let _ = Command::new("/bin/true").output();
    let _ = Command::new("/bin/true").stdin(Stdio::piped()).output();
    let _ = Command::new("/bin/true").stdout(Stdio::inherit()).stderr(Stdio::null()).output();
    let _ = Command::new("/bin/true").stdout(Stdio::piped()).status();
    let _ = Command::new("/bin/true").stdout(std::io::stderr()).spawn();
    let _ = Command::new("/bin/true").args(["a", "b c"]).env("K", "v=1").env_remove("R").current_dir("/w").spawn();
    let _ = Command::new("/bin/true").env("X", "1").env_clear().env("K", "v").spawn();
    println!("{:?}", Command::new("/bin/nul\0").status().unwrap_err().kind());
    println!("{:?}", Command::new("/bin/true").stdin(std::io::stdout()).spawn().unwrap_err().kind());
}
"""

I, P, N = abi.STDIO_INHERIT, abi.STDIO_PIPED, abi.STDIO_NULL


def test_std_s_stdio_defaults_and_edits_reach_the_host(
        compiler: Compiler, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[abi.SpawnRequest] = []
    decode = abi.decode_request
    monkeypatch.setattr(abi, "decode_request", lambda raw: received.append(decode(raw)) or received[-1])
    ran = sandbox.run(compiler.wasm("defaults", DEFAULTS))
    assert ran.stdout == "InvalidInput\nInvalidInput\n"  # NUL, and stdout used as stdin: refused in the guest
    assert [(r.stdin, r.stdout, r.stderr) for r in received] == [
        (I, I, I), (I, I, I), (N, P, P), (P, P, P), (N, I, N), (I, P, I), (I, P, I), (I, I, I), (I, I, I)]
    assert (received[7].args, received[7].env_ops, received[7].cwd) == (
        ["a", "b c"], [("set", "K", "v=1"), ("remove", "R", None)], "/w")
    assert received[8].env_ops == [("clear", None, None), ("set", "K", "v")]
    assert {(d.capability, d.target) for d in ran.ctx.denials} == {("process-spawn", "/bin/true")}


LIB_2015 = r"""
#![no_std]
#[macro_use]
extern crate std;
use std::process::Command;
use std::string::String;
#[derive(Debug, Clone, PartialEq)]
pub struct Tool { pub name: String }
pub fn make(tool: &Tool) -> Command {
    let mut cmd = Command::new(&tool.name);
    cmd.arg(format!("--id={}", vec![1, 2].len()));
    cmd
}
"""

LIB_2015_IMPLICIT = r"""
use std::collections::HashMap;
pub fn table() -> HashMap<&'static str, u32> { let mut m = HashMap::new(); m.insert("a", 1); m }
"""

LIB_2018 = r"""
use std::ffi::OsString;
use std::process::Command;
pub fn describe(cmd: &Command) -> String { format!("{:?}", cmd) }
pub fn program(cmd: &Command) -> OsString { cmd.get_program().to_owned() }
"""

MACROS = r"""
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
#[derive(Debug, Clone, PartialEq, Default)]
struct Config { name: String, flags: Vec<String> }
thread_local!(static COUNT: std::cell::Cell<u32> = std::cell::Cell::new(0));
fn thread_safe<T: Send + Sync>() {}
fn _as_std_promises() {
    use std::process::*;
    thread_safe::<(Command, Child, ChildStdin, ChildStdout, ChildStderr, Stdio, Output, ExitStatus)>();
}
fn work() -> Result<String, Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut file = std::fs::File::create(out.join("gen.rs"))?;
    writeln!(file, "pub const N: u32 = {};", lib2015i::table()["a"])?;
    let cmd = lib2015::make(&lib2015::Tool { name: "cc".into() });
    let mut text = String::new();
    write!(text, "{} {:?}", lib2018::describe(&cmd), lib2018::program(&cmd))?;
    let config = Config { name: "x".into(), flags: vec!["-O".to_string(); 2] };
    assert_eq!(config.clone(), config);
    assert!(matches!(config.flags.len(), 2));
    COUNT.with(|c| c.set(c.get() + 1));
    let m = Mutex::new(std::fs::read_to_string(out.join("gen.rs"))?);
    let missing = std::fs::read(out.join("missing")).map(|_| ()).unwrap_err();
    Ok(format!("{}|{:?}|{}|{:?}", text, config, m.lock().unwrap().trim(), missing.kind()))
}
fn main() {
    if std::env::var_os("PANIC").is_some() {
        panic!("boom {}", 6 * 7);
    }
    println!("{}", work().unwrap());
    eprintln!("done");
}
"""


def test_std_s_macros_and_modules_resolve_through_the_facade_in_every_edition(
        compiler: Compiler, sandbox: Sandbox) -> None:
    compiler.wasm("lib2015", LIB_2015, edition="2015", crate_type="rlib")
    compiler.wasm("lib2015i", LIB_2015_IMPLICIT, edition="2015", crate_type="rlib")
    compiler.wasm("lib2018", LIB_2018, edition="2018", crate_type="rlib")
    wasm = compiler.wasm("macros", MACROS, "--extern=lib2015", "--extern=lib2015i", "--extern=lib2018")
    ran = sandbox.run(wasm)
    assert (ran.code, ran.stderr) == (0, "done\n")
    assert ran.stdout == ('"cc" "--id=2" "cc"|Config { name: "x", flags: ["-O", "-O"] }|'
                          'pub const N: u32 = 1;|NotFound\n')
    with pytest.raises(GuestTrapped, match="boom 42"):
        sandbox.run(wasm, PANIC="1")


# -- children that run the compiler (through shim.host.probe) ----------------------------------------------

PIPES = r"""
use std::fs::File;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
fn main() {
    let rustc = std::env::var("RUSTC").unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    let mut child = Command::new(&rustc).arg("--version").stdout(Stdio::piped()).spawn().unwrap();
    println!("debug\t{:?}", child);
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    let status = child.try_wait().unwrap().unwrap();
    println!("read\t{}\t{}\t{:?}", text.trim(), status, child.wait().unwrap().code());

    let o = Command::new(&rustc).arg("--version").output().unwrap();
    println!("output\t{}\t{}\t{}", o.status.success(), String::from_utf8_lossy(&o.stdout).trim(), o.stderr.len());

    let path = format!("{}/version.txt", out);
    let st = Command::new(&rustc).arg("--version").stdout(File::create(&path).unwrap()).status().unwrap();
    println!("to-file\t{}\t{}", st.success(), std::fs::read_to_string(&path).unwrap().trim());

    // autocfg's probe, as autocfg 1.5 spawns it
    let probe = ["--crate-name", "probe0", "--crate-type=lib", "--out-dir", &out, "--emit=llvm-ir", "-"];
    for src in ["pub fn ok() {}", "pub fn broken( {"] {
        let mut c = Command::new(&rustc).args(probe).stdin(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        c.stdin.take().unwrap().write_all(src.as_bytes()).unwrap();
        println!("stdin\t{}", c.wait().unwrap().success());
    }
    let src = format!("{}/probe.rs", out);
    std::fs::write(&src, "pub fn ok() {}").unwrap();
    let st = Command::new(&rustc).args(probe).stdin(File::open(&src).unwrap()).stderr(Stdio::null()).status();
    println!("from-file\t{}", st.unwrap().success());

    let mut c = Command::new(&rustc).arg("-vV").spawn().unwrap();
    c.kill().unwrap();
    let st = c.wait().unwrap();
    println!("kill\t{}\t{:?}\t{}\t{:?}", st, st.code(), st.success(), st);
}
"""


def test_compiler_children_pipe_wait_and_kill_as_std_documents(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("pipes", PIPES))
    assert ran.code == 0, ran.stderr
    version = run([compiler.tc.compiler.rustc, "--version"]).strip()
    assert ran.lines() == [
        ["debug", "Child { stdin: None, stdout: Some(ChildStdout { .. }), stderr: None, .. }"],
        ["read", version, "exit status: 0", "Some(0)"],
        ["output", "true", version, "0"],
        ["to-file", "true", version],
        ["stdin", "true"],
        ["stdin", "false"],
        ["from-file", "true"],
        ["kill", "signal: 9", "None", "false", "ExitStatus(signal: 9)"],
    ]
    assert ran.ctx.denials == []


# -- real crates from crates.io ----------------------------------------------------------------------------

# Build dependencies every sandboxed build script may use, as crates.io serves them today.
ROOTS = {"cc": "1", "autocfg": "1", "version_check": "0.9", "rustc_version": "0.4", "pkg-config": "0.3",
         "cmake": "0.1"}


@dataclass(frozen=True)
class Unit:
    """One library of the resolved graph, as cargo would compile it."""

    name: str  # the crate name (`pkg_config`)
    root: str  # src/lib.rs
    edition: str
    features: tuple[str, ...]
    deps: tuple[str, ...]  # extern names


def resolve_roots(tc: toolchain.Toolchain, workdir: Path) -> list[Unit]:
    """ROOTS and their dependency closure for wasm32-wasip1, dependencies first, from `cargo metadata` of a
    scratch project (which downloads the sources into CARGO_HOME)."""
    (workdir / "src").mkdir(parents=True)
    (workdir / "src" / "lib.rs").write_text("")
    deps = "".join(f'{name} = "{req}"\n' for name, req in ROOTS.items())
    (workdir / "Cargo.toml").write_text(f'[package]\nname = "scratch"\nversion = "0.0.0"\n[dependencies]\n{deps}')
    env = {**scrubbed(dict(os.environ)), **toolchain.env_vars(tc)}
    proc = subprocess.run([tc.cargo or "cargo", "metadata", "--format-version", "1", "--filter-platform",
                           "wasm32-wasip1"], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"crates.io unreachable: {proc.stderr.strip().splitlines()[-1:]}")
    meta = json.loads(proc.stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"] if packages[n["id"]]["name"] != "scratch"}
    units: dict[str, Unit] = {}
    while len(units) < len(nodes):
        for pid, node in nodes.items():
            normal = [d for d in node["deps"] if any(k["kind"] is None for k in d["dep_kinds"])]
            if pid not in units and all(d["pkg"] in units for d in normal):
                lib = next(t for t in packages[pid]["targets"] if "lib" in t["kind"])
                units[pid] = Unit(lib["name"], lib["src_path"], lib["edition"], tuple(node["features"]),
                                  tuple(d["name"] for d in normal))
    return list(units.values())


@pytest.fixture(scope="session")
def build_deps(compiler: Compiler, tc: toolchain.Toolchain,
               tmp_path_factory: pytest.TempPathFactory) -> list[Unit]:
    """ROOTS and their dependencies compiled for wasm32-wasip1 against the facade, as published, into the
    guests' library directory."""
    units = resolve_roots(tc, tmp_path_factory.mktemp("scratch"))
    lib = compiler.workdir
    for unit in units:
        argv = [tc.compiler.rustc, "--crate-name", unit.name, "--crate-type", "rlib", "--edition", unit.edition,
                "--target", "wasm32-wasip1", "--sysroot", str(tc.wasm_sysroot), "--cap-lints=allow",
                "--extern", f"std={compiler.facade}", "-L", str(lib), "--out-dir", str(lib)]
        argv += [arg for feature in unit.features for arg in ("--cfg", f'feature="{feature}"')]
        argv += [arg for dep in unit.deps for arg in ("--extern", f"{dep}={lib / f'lib{dep}.rlib'}")]
        run(argv + [unit.root])
    return units


def test_real_build_dependencies_compile_against_the_facade_unchanged(build_deps: list[Unit],
                                                                      compiler: Compiler) -> None:
    names = {unit.name for unit in build_deps}
    assert names >= {"cc", "autocfg", "version_check", "rustc_version", "pkg_config", "cmake"}
    assert all((compiler.workdir / f"lib{name}.rlib").is_file() for name in names)


USES_CRATES = r"""
fn main() {
    let version = version_check::Version::read().expect("rustc version via the probe");
    println!("{}", version);
    let meta = rustc_version::version_meta().expect("rustc -vV via the probe");
    println!("{}", meta.semver);
    let err = cc::Build::new().file("x.c").cargo_metadata(false).try_compile("x").unwrap_err();
    println!("{}", err);
    let cmd: std::process::Command = cc::Build::new().cargo_metadata(false).get_compiler().to_command();
    println!("{:?}", cmd.get_program());
}
"""


def test_real_crates_reach_the_host_through_the_facade(
        compiler: Compiler, build_deps: list[Unit], sandbox: Sandbox) -> None:
    wasm = compiler.wasm("usescrates", USES_CRATES, *(f"--extern={name}" for name in
                                                      ("cc", "version_check", "rustc_version")))
    ran = sandbox.run(wasm, TARGET="x86_64-unknown-linux-gnu", HOST="x86_64-unknown-linux-gnu", OPT_LEVEL="0",
                      DEBUG="false", CC="gcc")
    assert ran.code == 0, ran.stderr
    release = compiler.tc.compiler.release
    version, semver, *cc_error_lines, cc_program = [line for line in ran.stdout.splitlines()
                                                    if not line.startswith("cargo:warning=")]
    cc_error = "\n".join(cc_error_lines)  # the denial ends with the entry to paste, on lines of its own
    assert version == release and semver == release
    assert "cratecage: build script of guest 0.1.0: process-spawn denied: gcc" in cc_error
    assert cc_program == '"gcc"'
    assert ("process-spawn", "gcc") in [(d.capability, d.target) for d in ran.ctx.denials]


CMAKE = r"""
fn main() {
    cmake::Config::new("clib").build();
}
"""


def test_the_cmake_crate_joins_its_prefix_path_and_asks_the_host_for_cmake(
        compiler: Compiler, build_deps: list[Unit], sandbox: Sandbox) -> None:
    """cmake-rs splits CMAKE_PREFIX_PATH and joins it again (wasm32-wasip1's std panics there) before it
    runs `cmake`; denied here, that spawn is where it stops (a granted one: tests/build/test_build_std_gaps.py)."""
    ctx = sandbox.context(TARGET="x86_64-unknown-linux-gnu", HOST="x86_64-unknown-linux-gnu", OPT_LEVEL="0",
                          DEBUG="false", PROFILE="debug", NUM_JOBS="2", CMAKE_PREFIX_PATH="/opt/a::/opt/b")
    (Path(ctx.package_dir) / "clib").mkdir()
    (Path(ctx.package_dir) / "clib" / "CMakeLists.txt").write_text("project(x C)\n")
    with pytest.raises(GuestTrapped) as trapped:
        sandbox.run(compiler.wasm("usescmake", CMAKE, "--extern=cmake"), ctx)
    assert "unsupported" not in str(trapped.value)
    assert re.search(r"failed to execute command: cratecage: build script of guest 0\.1\.0: process-spawn "
                     r"denied: cmake", str(trapped.value)), str(trapped.value)[-2000:]
    assert ("process-spawn", "cmake") in [(d.capability, d.target) for d in ctx.denials]


AUTOCFG = r"""
fn main() {
    let ac = autocfg::AutoCfg::new().expect("OUT_DIR is a writable directory");
    println!("{} {}", ac.probe_rustc_version(1, 0), ac.probe_rustc_version(999, 0));
    println!("{} {}", ac.probe_type("i128"), ac.probe_type("NoSuchType"));
    println!("{}", ac.no_std());
}
"""


def test_autocfg_accepts_out_dir_and_probes_through_the_host(
        compiler: Compiler, build_deps: list[Unit], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[list[str]] = []
    real_run_probe = probe.run_probe

    def recording(ctx: RunContext, req: abi.SpawnRequest, stdin: bytes) -> probe.ProbeResult:
        probes.append(req.args)
        return real_run_probe(ctx, req, stdin)

    monkeypatch.setattr(probe, "run_probe", recording)
    host = compiler.tc.compiler.host
    ran = sandbox.run(compiler.wasm("autocfgnew", AUTOCFG, "--extern=autocfg"), TARGET=host, HOST=host,
                      CARGO_ENCODED_RUSTFLAGS="")
    assert (ran.code, ran.stdout) == (0, "true false\ntrue false\nfalse\n"), ran.stderr
    assert ran.ctx.denials == []
    # `rustc --version --verbose`, the `std` sanity probe of AutoCfg::new, then one probe per probe_type
    assert probes[0] == ["--version", "--verbose"] and len(probes) == 4
    assert all("--emit=llvm-ir" in args and args[-1] == "-" for args in probes[1:])


# -- the file system: permission bits and the current directory -----------------------------------------

METADATA = r"""
use std::fs;
fn describe(what: &str, meta: std::io::Result<fs::Metadata>) {
    let m = meta.unwrap();
    let mtime = m.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
    let kind = (m.is_dir(), m.is_file(), m.file_type().is_symlink());
    println!("{}\treadonly={}\t{:?}\t{}\t{}", what, m.permissions().readonly(), kind, m.len(), mtime.as_nanos());
}
fn main() {
    describe("OUT_DIR", fs::metadata(std::env::var("OUT_DIR").unwrap()));
    describe(".", fs::metadata("."));
    describe("data.txt", fs::metadata("data.txt"));
    describe("link (lstat)", fs::symlink_metadata("link"));
    describe("link (stat)", fs::metadata("link"));
    describe("File::metadata", fs::File::open("data.txt").and_then(|f| f.metadata()));
    let mut entries: Vec<_> = fs::read_dir(".").unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        describe(&format!("entry {}", e.file_name().to_string_lossy()), e.metadata());
    }
}
"""


def test_metadata_has_plausible_permissions_and_is_otherwise_the_native_one(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_files(sandbox)
    ran = sandbox.run(compiler.wasm("metadata", METADATA), ctx)
    assert ran.code == 0, ran.stderr
    native = subprocess.run([str(compiler.native("metadata", METADATA))], cwd=ctx.package_dir, capture_output=True,
                            text=True, env={"OUT_DIR": ctx.out_dir}, timeout=60)
    assert ran.stdout == native.stdout  # readonly=false everywhere, file types, sizes and times intact
    assert "readonly=true" not in ran.stdout and "(false, false, true)" in ran.stdout
    assert ran.lines()[2][2:4] == ["(false, true, false)", "12"]


def test_the_wrappers_are_in_the_link_and_a_link_without_link_args_fails(compiler: Compiler) -> None:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(compiler.wasm("wrapped", METADATA)))
    # rustc exports every #[no_mangle] function; `__real_*` resolved to wasi-libc's, so none is imported
    assert {e.name for e in module.exports} >= {"__wrap_stat", "__wrap_lstat", "__wrap_fstat", "__wrap_fstatat"}
    assert [i.name for i in module.imports if "__real_" in i.name or "__wrap_" in i.name] == []
    unwrapped = compiler.link_without_link_args("unwrapped", METADATA)
    if unwrapped.returncode == 0:
        # rustup's wasm32-wasip1 link allows undefined symbols: they become imports no host defines
        left = wasmtime.Module.from_file(wasmtime.Engine(), str(compiler.workdir / "unwrapped.wasm"))
        assert "__real_stat" in {i.name for i in left.imports}
    else:
        assert "undefined symbol: __real_stat" in unwrapped.stderr


READ_ONLY = r"""
use std::fs;
fn main() {
    let pkg = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("{}", fs::metadata(&pkg).unwrap().permissions().readonly());
    println!("{}", fs::metadata("data.txt").unwrap().permissions().readonly());
    println!("{:?}", fs::write(format!("{}/new.txt", pkg), "x").unwrap_err().kind());
    println!("{:?}", fs::write("new.txt", "x").unwrap_err().kind());
    println!("{:?}", fs::write("data.txt", "x").unwrap_err().kind());
    println!("{:?}", fs::OpenOptions::new().append(true).open("data.txt").unwrap_err().kind());
    println!("{:?}", fs::create_dir("made").unwrap_err().kind());
    println!("{:?}", fs::remove_file("data.txt").unwrap_err().kind());
    fs::write(format!("{}/ok.txt", std::env::var("OUT_DIR").unwrap()), "x").unwrap();
}
"""


def test_a_read_only_preopen_refuses_writes_though_permissions_say_writable(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_files(sandbox)
    before = sorted(p.name for p in Path(ctx.package_dir).iterdir())
    ran = sandbox.run(compiler.wasm("readonly", READ_ONLY), ctx)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == ["false", "false"] + ["PermissionDenied"] * 6
    assert sorted(p.name for p in Path(ctx.package_dir).iterdir()) == before
    assert (Path(ctx.package_dir) / "data.txt").read_text() == "twelve bytes"
    assert (Path(ctx.out_dir) / "ok.txt").read_text() == "x"


CURRENT_DIR = r"""
use std::{env, fs, path};
fn main() {
    let cwd = env::current_dir().unwrap();
    println!("{}", cwd.display());
    if env::var_os("ONLY_CWD").is_some() {
        return;
    }
    println!("{}", fs::read_to_string(cwd.join("data.txt")).unwrap());
    println!("{}", fs::read_to_string("data.txt").unwrap());
    println!("{}", path::absolute("data.txt").unwrap().display());
    env::set_current_dir(env::var("OUT_DIR").unwrap()).unwrap();
    fs::write("relative.txt", "r").unwrap();
    println!("{}", env::current_dir().unwrap().display());
}
"""


def test_the_current_directory_is_the_package_directory(compiler: Compiler, sandbox: Sandbox) -> None:
    wasm = compiler.wasm("currentdir", CURRENT_DIR)
    ctx = package_with_files(sandbox)
    ran = sandbox.run(wasm, ctx)
    assert ran.code == 0, ran.stderr
    pkg = ctx.package_dir
    assert ran.stdout.splitlines() == [pkg, "twelve bytes", "twelve bytes", f"{pkg}/data.txt", ctx.out_dir]
    assert (Path(ctx.out_dir) / "relative.txt").read_text() == "r"
    # a CARGO_MANIFEST_DIR that is not preopened leaves wasi-libc's "/" (and no panic before main)
    assert sandbox.run(wasm, ONLY_CWD="1", CARGO_MANIFEST_DIR="/nonexistent").stdout == "/\n"


# -- realpath, for fs::canonicalize: the facade's where wasi-libc has none ----------------------------------

def ar_archive(members: dict[str, bytes], index: list[str] | None) -> bytes:
    """A GNU `ar` archive of `members`, with a symbol index ("/" member) naming `index` (offsets are dummies)."""
    def member(name: str, data: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")
    out = b"!<arch>\n"
    if index is not None:
        table = len(index).to_bytes(4, "big") + b"\0\0\0\0" * len(index) + b"".join(n.encode() + b"\0" for n in index)
        out += member("/", table)
    return out + b"".join(member(name + "/", data) for name, data in members.items())


CANONICALIZE = r"""
fn main() {
    let pkg = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    let absolute = [pkg.clone(), format!("{}/sub/../link", pkg), format!("{}/..", out),
                    format!("{}/../pkg/sub/uplink/data.txt", out), "/nonexistent/x".to_string()];
    let relative = [".", "..", "data.txt", "./sub/../data.txt", "sub/", "sub//..//data.txt", "link", "chain",
                    "sub/uplink/data.txt", "sub/uplink/link", "dirlink/../data.txt", "dirlink/", "missing",
                    "sub/missing/../data.txt", "dangling", "data.txt/", "data.txt/x", "link/", "loop", ""];
    for path in absolute.iter().map(String::as_str).chain(relative).chain(["abslink"]) {
        match std::fs::canonicalize(path) {
            Ok(p) => println!("{}\tOk\t{}", path, p.display()),
            Err(e) => println!("{}\tErr\t{:?}", path, e.kind()),
        }
    }
}
"""


def package_with_links(sandbox: Sandbox, **env: str) -> RunContext:
    ctx = package_with_files(sandbox, **env)
    pkg = Path(ctx.package_dir)
    for name, target in {"chain": "link", "sub/uplink": "..", "dirlink": "sub", "dangling": "nowhere",
                         "loop": "loop", "abslink": str(pkg / "data.txt")}.items():
        (pkg / name).symlink_to(target)
    return ctx


def test_canonicalize_answers_as_natively(compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_links(sandbox)
    assert os.path.realpath(ctx.package_dir) == ctx.package_dir  # else the native answers differ anyway
    ran = sandbox.run(compiler.wasm("canonicalize", CANONICALIZE), ctx)
    assert ran.code == 0, ran.stderr
    native = subprocess.run([str(compiler.native("canonicalize", CANONICALIZE))], cwd=ctx.package_dir,
                            capture_output=True, text=True, timeout=60,
                            env={"OUT_DIR": ctx.out_dir, "CARGO_MANIFEST_DIR": ctx.package_dir})
    assert native.returncode == 0, native.stderr
    pkg, run_dir = ctx.package_dir, str(Path(ctx.package_dir).parent)
    got = {line[0]: tuple(line[1:]) for line in ran.lines()}
    want = {line[0]: tuple(line[1:]) for line in (line.split("\t") for line in native.stdout.splitlines())}
    # wasmtime refuses to read a symbolic link whose target is absolute (EPERM), whoever asks
    assert (got.pop("abslink"), want.pop("abslink")) == (("Err", "PermissionDenied"), ("Ok", f"{pkg}/data.txt"))
    assert got == want
    assert got["data.txt"] == got["./sub/../data.txt"] == got["sub/uplink/link"] == ("Ok", f"{pkg}/data.txt")
    assert got["chain"] == got["dirlink/../data.txt"] == ("Ok", f"{pkg}/data.txt")
    assert got[".."] == got[f"{ctx.out_dir}/.."] == ("Ok", run_dir)
    assert got["dirlink/"] == ("Ok", f"{pkg}/sub")
    assert {got[p] for p in ("missing", "sub/missing/../data.txt", "dangling", "", "/nonexistent/x")} == {
        ("Err", "NotFound")}
    assert {got[p] for p in ("data.txt/", "data.txt/x", "link/")} == {("Err", "NotADirectory")}
    assert got["loop"] == ("Err", "FilesystemLoop")


REALPATH_C = r"""
use std::ffi::{c_char, c_void, CStr, CString};
extern "C" {
    fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char;
    fn free(ptr: *mut c_void);
}
fn call(what: &str, path: Option<&str>, buffer: bool) {
    let owned = path.map(|p| CString::new(p).unwrap());
    let mut buf = vec![0 as c_char; 4096];  // PATH_MAX
    let dst = if buffer { buf.as_mut_ptr() } else { std::ptr::null_mut() };
    let got = unsafe { realpath(owned.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()), dst) };
    if got.is_null() {
        println!("{}\tErr\t{:?}", what, std::io::Error::last_os_error().kind());
        return;
    }
    let text = unsafe { CStr::from_ptr(got) }.to_str().unwrap().to_owned();
    if buffer {
        assert_eq!(got, dst);
    } else {
        unsafe { free(got.cast()) };
    }
    println!("{}\tOk\t{}", what, text);
}
fn main() {
    let deep = std::fs::read_to_string("deep.txt").unwrap();
    call("buffer", Some("sub/../link"), true);
    call("malloc", Some("sub/../link"), false);
    call("null path", None, false);
    call("empty", Some(""), true);
    call("missing", Some("missing"), true);
    call("deep, buffer", Some(&deep), true);
    call("deep, malloc", Some(&deep), false);
}
"""


def test_realpath_fills_the_buffer_or_mallocs_and_sets_errno(compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_links(sandbox)
    # a directory whose absolute path (and so realpath's answer) is longer than PATH_MAX, though its path
    # relative to the package stays below it
    pkg = ctx.package_dir
    want = 4100 - len(pkg) - 1
    names = ["d" * 200] * (want // 201) + ["e" * max(1, want % 201 - 1)]
    deep = "/".join(names)
    assert len(pkg) + 1 + len(deep) + 1 > 4096 > len(deep)
    fd = os.open(pkg, os.O_RDONLY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            fd, old = os.open(name, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
    finally:
        os.close(fd)
    (Path(pkg) / "deep.txt").write_text(deep)
    ran = sandbox.run(compiler.wasm("realpathc", REALPATH_C), ctx)
    assert ran.code == 0, ran.stderr
    lines = {line[0]: tuple(line[1:]) for line in ran.lines()}
    # PATH_MAX bounds only the caller's buffer (musl's realpath in rustup's wasi-libc would bound both)
    assert lines.pop("deep, malloc") == ("Ok", f"{pkg}/{deep}")
    assert lines == {"buffer": ("Ok", f"{pkg}/data.txt"), "malloc": ("Ok", f"{pkg}/data.txt"),
                     "null path": ("Err", "InvalidInput"), "empty": ("Err", "NotFound"),
                     "missing": ("Err", "NotFound"), "deep, buffer": ("Err", "InvalidFilename")}


def test_every_canonicalize_reaches_the_facade_s_realpath(tc: toolchain.Toolchain, compiler: Compiler) -> None:
    assert "link-arg=--wrap=realpath" in facade.LINK_ARGS
    assert compiler.facade.parent.name == facade.source_hash(facade.build_flags(tc))
    # a canonicalize-using program links whatever the libc has; rustc exports the facade's definition
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(compiler.wasm("canonlinks", CANONICALIZE)))
    assert "__wrap_realpath" in {e.name for e in module.exports}
    assert not {i.name for i in module.imports} & {"realpath", "__real_realpath"}


def test_with_rustup_s_wasi_libc_canonicalize_still_reaches_the_facade(
        cache_env: dict[str, str], sandbox: Sandbox, tmp_path: Path) -> None:
    rustup = rustup_wasm_toolchain()
    assert facade.build_flags(rustup) == facade.FLAGS
    rlib = facade.facade_rlib(rustup, cache_env)
    assert rlib.parent.name == facade.source_hash(facade.FLAGS)
    wasm = Compiler(rustup, rlib, tmp_path).wasm("canonrustup", CANONICALIZE)
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(wasm))
    assert "__wrap_realpath" in {e.name for e in module.exports}
    ran = sandbox.run(wasm, package_with_links(sandbox))
    assert ran.code == 0, ran.stderr
    got = {line[0]: tuple(line[1:]) for line in ran.lines()}
    pkg = ran.ctx.package_dir
    assert got["./sub/../data.txt"] == got["sub/uplink/link"] == ("Ok", f"{pkg}/data.txt")
    assert got["link"] == ("Ok", f"{pkg}/data.txt") and got["missing"] == ("Err", "NotFound")
    assert got[pkg] == ("Ok", pkg)  # musl's realpath answered NotFound for absolute paths into a preopen


THREADS = r"""
fn main() {
    let handle = std::thread::Builder::new().spawn(|| 1).unwrap();
    eprintln!("builder: {:?}", handle.join());
    eprintln!("scope ran: {}", std::thread::scope(|_| 3));
    std::thread::spawn(|| eprintln!("spawned ran"));
}
"""


def test_threads_link_whatever_the_libc_has_and_spawned_closures_run(compiler: Compiler, sandbox: Sandbox) -> None:
    """cc's `parallel` feature mentions std::thread: the module links (Debian's wasi-libc has no pthreads;
    the facade's thread.rs never reaches them), and spawned closures run (tests/toolchain/test_facade_gaps.py)."""
    ran = sandbox.run(compiler.wasm("threads", THREADS))
    assert (ran.code, ran.stderr) == (0, "builder: Ok(1)\nscope ran: 3\nspawned ran\n")
