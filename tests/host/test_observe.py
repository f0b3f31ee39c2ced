"""Observation of what a guest was refused: the facade's libc wrappers (shim/rust/facade/src/observe.rs)
report failed file system accesses and environment lookups that found nothing to `report`, and
shim.host.observe records them in `ctx.observations`.

Real guests are compiled against the facade and run like the runner runs build scripts (tests/guests.py);
the host function's defences are tested from a WAT module that can pass any pointer a hostile guest could.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.host import abi
from shim.host import observe as host_observe
from shim.host.context import Observation, RunContext
from shim.toolchain import facade

from guests import (Compiler, Ran, Sandbox, cache_env, compiler, facade_rlib,  # noqa: F401 (fixtures)
                    package_with_files, rustup_wasm_toolchain, sandbox, tc)

# wasi-libc answers ENOENT for a path outside the preopens when "." is preopened (it is then looked up
# below the package directory), ENOTCAPABLE when no preopen matches at all.
OUTSIDE = {"ENOENT", "ENOTCAPABLE"}
READ_ONLY = {"EPERM", "EROFS", "EACCES"}


def fs(ran_ctx: RunContext) -> dict[tuple[str, str], str]:
    """(op, path) -> errno of the run's file system observations."""
    return {(o.op, o.target): o.errno for o in ran_ctx.observations if o.kind == "fs"}


def env(ran_ctx: RunContext) -> list[str]:
    return [o.target for o in ran_ctx.observations if o.kind == "env"]


# -- the link --------------------------------------------------------------------------------------------

def test_every_wrapper_is_in_the_link_and_report_is_the_only_new_import(compiler: Compiler) -> None:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(compiler.wasm("plain", "fn main() {}")))
    assert {e.name for e in module.exports} >= {f"__wrap_{name}" for name in facade.WRAPPED}
    assert facade.LINK_ARGS == tuple(f"link-arg=--wrap={name}" for name in facade.WRAPPED)
    imports = {(i.module, i.name) for i in module.imports}
    assert not {name for _, name in imports if name.startswith(("__real_", "__wrap_"))}
    assert {name for mod, name in imports if mod == abi.IMPORT_MODULE} <= set(abi.ALL_IMPORTS)
    assert (abi.IMPORT_MODULE, "report") in imports


# -- failures are reported -----------------------------------------------------------------------------------

FAILURES = r"""
use std::{env, fs, path::Path};
fn show<T>(what: &str, result: std::io::Result<T>) {
    println!("{}\t{}", what, match result { Ok(_) => "Ok".to_string(), Err(e) => format!("{:?}", e.kind()) });
}
fn main() {
    let pkg = env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = env::var("OUT_DIR").unwrap();
    show("read /etc/hostname", fs::read("/etc/hostname"));
    show("read again", fs::read_to_string("/etc/hostname"));
    show("write pkg", fs::write(format!("{}/new.txt", pkg), "x"));
    show("create relative", fs::File::create("sub/./made.txt"));
    show("append", fs::OpenOptions::new().append(true).open("data.txt"));
    show("read ..", fs::read("../secret.txt"));
    show("read_dir", fs::read_dir("/usr/lib"));
    show("metadata", fs::metadata("/nonexistent/x"));
    println!("exists\t{}", Path::new("/opt/probe.h").exists());
    show("symlink_metadata", fs::symlink_metadata("/var/missing"));
    show("canonicalize", fs::canonicalize("/srv/nothing/../x"));
    show("create_dir", fs::create_dir("made"));
    show("create_dir_all", fs::create_dir_all("/made/deep"));
    show("remove_file", fs::remove_file("data.txt"));
    show("remove_dir", fs::remove_dir("sub"));
    show("rename", fs::rename(format!("{}/ok.txt", out), "renamed.txt"));
    show("copy", fs::copy("data.txt", "/elsewhere/copy.txt"));
    show("read_link", fs::read_link("/etc/alternatives/cc"));
    env::set_current_dir(&out).unwrap();
    show("read ../..", fs::read("../../outside.txt"));
    show("read ../../..", fs::read("../../../../../../../root.txt"));
    println!("var\t{:?}", env::var("AWS_SECRET_ACCESS_KEY"));
    println!("var_os\t{:?}", env::var_os("CC_wasm32_wasip1"));
    println!("var again\t{:?}", env::var("AWS_SECRET_ACCESS_KEY"));
}
"""


def test_failed_accesses_and_missing_variables_are_observed(compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_files(sandbox)
    (Path(ctx.out_dir) / "ok.txt").write_text("ok")
    run_dir = str(Path(ctx.package_dir).parent)
    (Path(run_dir) / "secret.txt").write_text("s")
    ran = sandbox.run(compiler.wasm("failures", FAILURES), ctx)
    assert ran.code == 0, ran.stderr
    results = dict(line for line in ran.lines())
    # the guest's errors are std's own: every wrapper kept errno
    assert results["read /etc/hostname"] == "NotFound" and results["write pkg"] == "PermissionDenied"
    # `..` is resolved before a preopen is chosen (facade paths.rs): refused as any path outside them
    assert results["read .."] == "NotFound" and results["exists"] == "false"
    pkg, out = ctx.package_dir, ctx.out_dir
    got = fs(ctx)
    outside = {  # paths no preopen holds, however they are spelled (`..` out of one included)
        ("read", "/etc/hostname"), ("list", "/usr/lib"), ("stat", "/nonexistent/x"), ("stat", "/opt/probe.h"),
        ("stat", "/var/missing"), ("stat", "/srv/x"), ("read", "/etc/alternatives/cc"),
        ("read", f"{run_dir}/secret.txt"), ("read", f"{Path(run_dir).parent}/outside.txt"), ("read", "/root.txt"),
    }
    read_only = {  # writes into the package directory
        ("write", f"{pkg}/new.txt"), ("write", f"{pkg}/sub/made.txt"), ("write", f"{pkg}/data.txt"),
        ("write", f"{pkg}/made"), ("write", f"{pkg}/sub"), ("write", f"{pkg}/renamed.txt"),
    }
    # create_dir_all stops at the first error that is not NotFound (EPERM for the leaf here); rename reports
    # both of its paths; copy read its source, then failed to create the destination
    other = {("write", "/made/deep"), ("write", f"{out}/ok.txt"), ("write", "/elsewhere/copy.txt")}
    assert set(got) == outside | read_only | other, sorted(got)
    assert {got[key] for key in outside} <= OUTSIDE
    assert {got[key] for key in read_only} <= READ_ONLY
    assert set(got.values()) <= abi.REPORTED_ERRNOS
    assert env(ctx) == ["AWS_SECRET_ACCESS_KEY", "CC_wasm32_wasip1"]  # each once, in order
    assert all(o.target.startswith("/") and "/../" not in o.target and "//" not in o.target
               for o in ctx.observations if o.kind == "fs")
    assert len(ctx.observations) == len(set(ctx.observations))
    assert ctx.denials == []  # observation only: turning them into denials is the runner's business


SUCCESSES = r"""
use std::{env, fs, io::Write};
fn main() {
    let pkg = env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = env::var("OUT_DIR").unwrap();
    assert_eq!(fs::read_to_string("data.txt").unwrap(), "twelve bytes");
    assert_eq!(fs::read_to_string(format!("{}/sub/../data.txt", pkg)).unwrap(), "twelve bytes");
    fs::metadata(&pkg).unwrap();
    fs::symlink_metadata("link").unwrap();
    assert_eq!(fs::read_link("link").unwrap().to_str(), Some("data.txt"));
    assert_eq!(fs::read_dir(".").unwrap().count(), 3);
    fs::canonicalize("link").unwrap();
    fs::canonicalize(&out).unwrap();
    fs::write(format!("{}/gen.rs", out), "// generated").unwrap();
    fs::OpenOptions::new().append(true).open(format!("{}/gen.rs", out)).unwrap().write_all(b"\n").unwrap();
    fs::create_dir(format!("{}/a", out)).unwrap();
    fs::create_dir_all(format!("{}/a/b", out)).unwrap();  // the first mkdir succeeds
    fs::rename(format!("{}/gen.rs", out), format!("{}/a/b/gen.rs", out)).unwrap();
    fs::copy("data.txt", format!("{}/copy.txt", out)).unwrap();
    fs::remove_file(format!("{}/copy.txt", out)).unwrap();
    fs::remove_dir_all(format!("{}/a", out)).unwrap();
    fs::write(env::temp_dir().join("t"), "t").unwrap();
    for name in ["OUT_DIR", "CARGO_PKG_NAME", "RUSTC"] {
        env::var(name).unwrap();
    }
    assert!(env::vars().count() >= 3);
    println!("ok");
}
"""


def test_successful_accesses_and_lookups_are_not_observed(compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_files(sandbox)
    ran = sandbox.run(compiler.wasm("successes", SUCCESSES), ctx)
    assert (ran.code, ran.stdout) == (0, "ok\n"), ran.stderr
    assert ctx.observations == []


PROBING = r"""
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("{}", out.join("generated.rs").exists());
    std::fs::create_dir_all(out.join("a/b")).unwrap();
}
"""


def test_failed_calls_inside_a_successful_operation_are_observed_too(compiler: Compiler, sandbox: Sandbox) -> None:
    """The wrappers see libc calls, not std's intent: a probe for a missing file and create_dir_all's first
    mkdir fail (ENOENT), though inside OUT_DIR. The runner's policy check leaves them out of the denials."""
    ctx = sandbox.context()
    ran = sandbox.run(compiler.wasm("probing", PROBING), ctx)
    assert (ran.code, ran.stdout) == (0, "false\n"), ran.stderr
    out = ctx.out_dir
    assert ctx.observations == [Observation("fs", "stat", f"{out}/generated.rs", "ENOENT"),
                                Observation("fs", "write", f"{out}/a/b", "ENOENT")]


LIBC = r"""
use std::ffi::{c_char, c_int, c_void, CString};
extern "C" {
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut c_void;
    fn fclose(file: *mut c_void) -> c_int;
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn access(path: *const c_char, mode: c_int) -> c_int;
    fn opendir(path: *const c_char) -> *mut c_void;
    fn getenv(name: *const c_char) -> *mut c_char;
    fn mkdir(path: *const c_char, mode: u32) -> c_int;
}
const O_WRONLY: c_int = 0x1000_0000;
const O_CREAT: c_int = 0x1000;
fn c(s: &str) -> CString { CString::new(s).unwrap() }
fn main() {
    let pkg = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    unsafe {
        println!("fopen r\t{}", fopen(c("/etc/passwd").as_ptr(), c("r").as_ptr()).is_null());
        println!("fopen w\t{}", fopen(c(&format!("{}/c.txt", pkg)).as_ptr(), c("w").as_ptr()).is_null());
        let ok = fopen(c(&format!("{}/made-by-c.txt", out)).as_ptr(), c("w").as_ptr());
        println!("fopen ok\t{}", !ok.is_null() && fclose(ok) == 0);
        let fd = open(c(&format!("{}/mode.txt", out)).as_ptr(), O_WRONLY | O_CREAT, 0o600 as c_int);
        println!("open mode\t{}", fd >= 0 && close(fd) == 0);
        println!("open\t{}", open(c("/proc/self/environ").as_ptr(), 0x0400_0000));
        println!("access\t{}", access(c("/etc/shadow").as_ptr(), 0));
        println!("opendir\t{}", opendir(c("/home").as_ptr()).is_null());
        println!("getenv\t{}", getenv(c("HOME").as_ptr()).is_null());
        println!("getenv set\t{}", getenv(c("OUT_DIR").as_ptr()).is_null());
        println!("mkdir\t{}", mkdir(c("/tmp-made").as_ptr(), 0o755));
    }
}
"""


def test_c_level_libc_calls_are_observed(compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_files(sandbox)
    ran = sandbox.run(compiler.wasm("libc", LIBC), ctx)
    assert ran.code == 0, ran.stderr
    assert dict(ran.lines()) == {"fopen r": "true", "fopen w": "true", "fopen ok": "true", "open mode": "true",
                                 "open": "-1", "access": "-1", "opendir": "true", "getenv": "true",
                                 "getenv set": "false", "mkdir": "-1"}
    assert (Path(ctx.out_dir) / "made-by-c.txt").exists() and (Path(ctx.out_dir) / "mode.txt").exists()
    got = fs(ctx)
    assert set(got) == {("read", "/etc/passwd"), ("write", f"{ctx.package_dir}/c.txt"),
                        ("read", "/proc/self/environ"), ("stat", "/etc/shadow"), ("list", "/home"),
                        ("write", "/tmp-made")}
    assert got[("write", f"{ctx.package_dir}/c.txt")] in READ_ONLY and got[("read", "/etc/passwd")] in OUTSIDE
    assert env(ctx) == ["HOME"]


MANY = r"""
fn main() {
    let n: usize = std::env::var("N").unwrap().parse().unwrap();
    let same = std::env::var_os("SAME").is_some();
    for i in 0..n {
        let path = if same { "/nope/same".to_string() } else { format!("/nope/{}", i) };
        assert!(std::fs::File::open(&path).is_err());
        if i % 2 == 0 {
            let _ = std::env::var(if same { "MISSING".to_string() } else { format!("MISSING_{}", i) });
        }
    }
    println!("done");
}
"""


def test_a_flood_of_failures_is_capped_and_the_guest_stops_reporting(
        compiler: Compiler, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    report = host_observe.Observer.abi_report

    def counting(self: host_observe.Observer, *args: int) -> int:
        nonlocal calls
        calls += 1
        return report(self, *args)

    monkeypatch.setattr(host_observe.Observer, "abi_report", counting)
    wasm = compiler.wasm("many", MANY)
    started = time.monotonic()
    ran = sandbox.run(wasm, N="100000")
    assert (ran.code, ran.stdout) == (0, "done\n"), ran.stderr
    assert len(ran.ctx.observations) == host_observe.MAX_OBSERVATIONS
    assert len(set(ran.ctx.observations)) == host_observe.MAX_OBSERVATIONS
    assert calls == host_observe.MAX_OBSERVATIONS  # REPORT_STOP on the last one: the guest stopped calling
    assert time.monotonic() - started < 60

    calls = 0
    ran = sandbox.run(wasm, N="100000", SAME="1")
    assert ran.code == 0, ran.stderr
    assert ran.ctx.observations == [Observation("fs", "read", "/nope/same", "ENOENT"),
                                    Observation("env", "get", "MISSING", "")]
    assert calls == 2  # the guest's own table remembered the rest


def test_with_rustup_s_wasi_libc_failures_are_observed_too(
        cache_env: dict[str, str], sandbox: Sandbox, tmp_path: Path) -> None:
    rustup = rustup_wasm_toolchain()
    wasm = Compiler(rustup, facade.facade_rlib(rustup, cache_env), tmp_path).wasm("libcrustup", LIBC)
    ctx = package_with_files(sandbox)
    ran = sandbox.run(wasm, ctx)
    assert ran.code == 0, ran.stderr
    assert {("read", "/etc/passwd"), ("write", f"{ctx.package_dir}/c.txt"), ("stat", "/etc/shadow"),
            ("list", "/home")} <= set(fs(ctx))
    assert env(ctx) == ["HOME"]


# -- warn mode: "/" read-only, successes reported too ----------------------------------------------------

WARN = r"""
use std::{env, fs};
fn show<T>(what: &str, result: std::io::Result<T>) {
    println!("{}\t{}", what, match result { Ok(_) => "Ok".to_string(), Err(e) => format!("{:?}", e.kind()) });
}
fn main() {
    let outside = env::var("OUTSIDE").unwrap();
    let out = env::var("OUT_DIR").unwrap();
    println!("read outside\t{}", fs::read_to_string(format!("{}/secret.txt", outside)).unwrap());
    println!("read relative\t{}", fs::read_to_string("data.txt").unwrap());
    show("metadata outside", fs::metadata(format!("{}/secret.txt", outside)));
    show("read_dir outside", fs::read_dir(&outside));
    show("canonicalize outside", fs::canonicalize(format!("{}/./secret.txt", outside)));
    show("write outside", fs::write(format!("{}/canary", outside), "x"));
    show("write pkg", fs::write("new.txt", "x"));
    show("write out", fs::write(format!("{}/gen.rs", out), "x"));
    show("read missing", fs::read("/nonexistent/x"));
    println!("home\t{}", env::var("HOME").unwrap());
    println!("missing\t{:?}", env::var("NOT_SET_ANYWHERE"));
}
"""


def run_warn_guest(sandbox: Sandbox, wasm: Path, tmp_path: Path) -> Ran:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    ctx = package_with_files(sandbox, OUTSIDE=str(outside), HOME="/home/someone",
                             **{abi.OBSERVE_ENV: abi.OBSERVE_ALL})
    return sandbox.run(wasm, ctx, granted=[("/", "/", False)])


def check_warn_run(ran: Ran, tmp_path: Path) -> None:
    assert ran.code == 0, ran.stderr
    outside, ctx = str(tmp_path / "outside"), ran.ctx
    results = dict(ran.lines())
    assert results["read outside"] == "secret" and results["read relative"] == "twelve bytes"
    assert results["metadata outside"] == results["read_dir outside"] == results["canonicalize outside"] == "Ok"
    assert results["write outside"] in ("PermissionDenied", "ReadOnlyFilesystem") and results["write out"] == "Ok"
    assert results["write pkg"] in ("PermissionDenied", "ReadOnlyFilesystem")
    assert results["home"] == "/home/someone" and results["missing"] == "Err(NotPresent)"
    assert not (tmp_path / "outside" / "canary").exists()
    got = fs(ctx)
    assert {key for key, errno in got.items() if errno == abi.ACCESS_OK} == {
        ("read", f"{outside}/secret.txt"), ("stat", f"{outside}/secret.txt"), ("list", outside)}
    assert got[("write", f"{outside}/canary")] in READ_ONLY and got[("write", f"{ctx.package_dir}/new.txt")] in READ_ONLY
    assert got[("read", "/nonexistent/x")] == "ENOENT"
    found = {o.target for o in ctx.observations if o.kind == "env" and o.succeeded}
    assert {"HOME", "OUTSIDE", "OUT_DIR"} <= found and abi.OBSERVE_ENV not in found
    assert [o.target for o in ctx.observations if o.kind == "env" and not o.succeeded] == ["NOT_SET_ANYWHERE"]


def test_in_warn_mode_reads_reach_the_root_and_successes_are_observed(
        compiler: Compiler, sandbox: Sandbox, tmp_path: Path) -> None:
    """Relative paths still reach the package, OUT_DIR stays writable and nothing else is; successes inside
    the run's own directories are dropped by the host (shim.host.observe)."""
    check_warn_run(run_warn_guest(sandbox, compiler.wasm("warn", WARN), tmp_path), tmp_path)


def test_in_warn_mode_with_rustup_s_wasi_libc_too(cache_env: dict[str, str], sandbox: Sandbox,
                                                 tmp_path: Path) -> None:
    rustup = rustup_wasm_toolchain()
    (tmp_path / "build").mkdir()
    wasm = Compiler(rustup, facade.facade_rlib(rustup, cache_env), tmp_path / "build").wasm("warnrustup", WARN)
    check_warn_run(run_warn_guest(sandbox, wasm, tmp_path), tmp_path)


# -- the host function against a hostile guest ------------------------------------------------------------

WAT = f"""
(module
  (import "{abi.IMPORT_MODULE}" "report" (func $report (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "report") (param i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 call $report))
"""


class Guest:
    def __init__(self, ctx: RunContext) -> None:
        engine = wasmtime.Engine()
        linker = wasmtime.Linker(engine)
        self.observer = host_observe.define(linker, ctx)
        self.store = wasmtime.Store(engine)
        self.instance = linker.instantiate(self.store, wasmtime.Module(engine, WAT))
        self.memory = self.instance.exports(self.store)["memory"]

    def report(self, kind: int, payload: bytes, ptr: int = 64, length: int | None = None) -> int:
        self.memory.write(self.store, payload, ptr)
        return self.instance.exports(self.store)["report"](
            self.store, kind, ptr, len(payload) if length is None else length)

    def call(self, kind: int, ptr: int, length: int) -> int:
        return self.instance.exports(self.store)["report"](self.store, kind, ptr, length)


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(crate="guest", version="0.1.0", package_dir=str(tmp_path), out_dir=str(tmp_path / "out"),
                      tmp_dir=str(tmp_path / "tmp"), env={}, host_env={}, rustc="rustc", sysroot="/")


def test_reports_are_decoded_normalized_and_recorded_once(ctx: RunContext) -> None:
    guest = Guest(ctx)
    assert guest.report(abi.REPORT_FS, b"read\0/etc//./x/../hostname\0ENOENT") == 0
    assert guest.report(abi.REPORT_FS, b"read\0/etc/hostname\0ENOENT") == 0
    assert guest.report(abi.REPORT_FS, b"write\0//pkg/new\x00EPERM") == 0
    assert guest.report(abi.REPORT_FS, b"stat\0/\xff\0" + b"76") == 0
    assert guest.report(abi.REPORT_ENV, b"AWS_SECRET_ACCESS_KEY") == 0
    assert guest.report(abi.REPORT_ENV, b"AWS_SECRET_ACCESS_KEY") == 0
    assert ctx.observations == [Observation("fs", "read", "/etc/hostname", "ENOENT"),
                                Observation("fs", "write", "/pkg/new", "EPERM"),
                                Observation("fs", "stat", "/\udcff", "76"),
                                Observation("env", "get", "AWS_SECRET_ACCESS_KEY", "")]
    assert guest.observer.dropped == 0


@pytest.mark.parametrize("kind, payload", [
    (0, b"read\0/x\0ENOENT"),
    (4, b"X"),
    (abi.REPORT_FS, b"read\0/x"),
    (abi.REPORT_FS, b"read\0/x\0ENOENT\0extra"),
    (abi.REPORT_FS, b"open\0/x\0ENOENT"),
    (abi.REPORT_FS, b"read\0relative\0ENOENT"),
    (abi.REPORT_FS, b"read\0\0ENOENT"),
    (abi.REPORT_FS, b"read\0/x\0"),
    (abi.REPORT_FS, b"read\0/x\0EWHATEVER"),
    (abi.REPORT_FS, b"read\0/x\0-1"),
    (abi.REPORT_ENV, b""),
    (abi.REPORT_ENV, b"A=B"),
    (abi.REPORT_ENV, b"A\0B"),
])
def test_a_malformed_report_is_invalid_and_dropped(ctx: RunContext, kind: int, payload: bytes) -> None:
    guest = Guest(ctx)
    assert guest.report(kind, payload) == abi.E_INVALID
    assert ctx.observations == [] and guest.observer.dropped == 1


@pytest.mark.parametrize("ptr, length", [
    (65536 - 4, 8), (0, 65537), (-1, 4), (0xFFFFFFFF, 2), (4, -1), (0, abi.MAX_REPORT + 1),
])
def test_pointers_are_bounds_checked(ctx: RunContext, ptr: int, length: int) -> None:
    guest = Guest(ctx)
    assert guest.call(abi.REPORT_ENV, ptr, length) == abi.E_INVALID
    assert ctx.observations == []


def test_the_cap_answers_stop_and_keeps_memory_bounded(ctx: RunContext) -> None:
    guest = Guest(ctx)
    for i in range(host_observe.MAX_OBSERVATIONS - 1):
        assert guest.report(abi.REPORT_ENV, f"V{i}".encode()) == 0
    assert guest.report(abi.REPORT_ENV, b"LAST") == abi.REPORT_STOP
    for i in range(100):
        assert guest.report(abi.REPORT_FS, f"read\0/more/{i}\0ENOENT".encode()) == abi.REPORT_STOP
    assert len(ctx.observations) == host_observe.MAX_OBSERVATIONS
    assert len(guest.observer.seen) == host_observe.MAX_OBSERVATIONS and guest.observer.dropped == 100


def test_a_module_without_memory_gets_invalid(ctx: RunContext) -> None:
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    host_observe.define(linker, ctx)
    wat = (f'(module (import "{abi.IMPORT_MODULE}" "report" (func $r (param i32 i32 i32) (result i32)))'
           f' (func (export "r") (result i32) i32.const 2 i32.const 0 i32.const 1 call $r))')
    store = wasmtime.Store(engine)
    instance = linker.instantiate(store, wasmtime.Module(engine, wat))
    assert instance.exports(store)["r"](store) == abi.E_INVALID
    assert ctx.observations == []


def test_a_bug_here_becomes_an_error_code_not_an_exception(ctx: RunContext,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(kind: int, data: bytes) -> Observation:
        raise KeyError("oops")

    monkeypatch.setattr(abi, "decode_report", broken)
    guest = Guest(ctx)
    assert guest.report(abi.REPORT_ENV, b"X") == abi.E_IO
    assert ctx.observations == []


@settings(max_examples=300, deadline=None)
@given(kind=st.integers(-3, 5), data=st.binary(max_size=64))
def test_decode_report_either_decodes_or_raises_report_error(kind: int, data: bytes) -> None:
    try:
        observation = abi.decode_report(kind, data)
    except abi.ReportError:
        return
    assert observation.kind in ("fs", "env")
    assert abi.decode_report(*abi.encode_report(observation)) == observation


def test_encode_report_round_trips() -> None:
    for observation in (Observation("fs", "list", "/usr/lib", "ENOTCAPABLE"), Observation("env", "get", "HOME", "")):
        kind, raw = abi.encode_report(observation)
        assert kind == (abi.REPORT_FS if observation.kind == "fs" else abi.REPORT_ENV)
        assert abi.decode_report(kind, raw) == observation
