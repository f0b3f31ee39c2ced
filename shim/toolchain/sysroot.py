"""Making a compiler wasm32-wasip1-capable: `rustup target add`, or a private std built from rust-src.

The offline route (verified in notes/toolchain.md): a scratch cargo package built with
`RUSTC_BOOTSTRAP=1 cargo build -Zbuild-std=std,panic_abort --target wasm32-wasip1 --release`, std's own
dependencies taken from rust-src's `library/vendor` (or crates.io when rust-src has none), then the std
rlibs plus wasi-libc's `crt1-command.o`/`libc.a` copied into `<cache>/toolchains/<key>/sysroot`. The
sysroot is assembled in a temporary directory and renamed into place, under a lock, so concurrent installs
and builds never see half of one. `cratecage toolchain install` builds it, and so does the first sandboxed
unit of a compiler that has none (shim.toolchain.first_use).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Final, Mapping

from shim import program
from shim.cargo import layout
from shim.errors import ProvisionError, ToolchainError
from shim.files import cache_root
from shim.toolchain.capable import COMPLETE_MARKER, WASM_TARGET, rustup_home
from shim.toolchain.compiler import (DEBIAN_INSTALL, Compiler, Toolchain, private_sysroot, probe_compiler,
                                     save_selected, scrubbed_env, toolchain_for)

# Where a wasi-libc (crt1-command.o, libc.a) is commonly installed; $WASI_SYSROOT is tried first.
WASI_LIBC_DIRS: Final = (
    "/usr/lib/wasm32-wasi",  # Debian's wasi-libc
    "/usr/lib/wasm32-wasip1",
    "/usr/share/wasi-sysroot/lib/wasm32-wasi",
    "/usr/share/wasi-sysroot/lib/wasm32-wasip1",
    "/opt/wasi-sdk/share/wasi-sysroot/lib/wasm32-wasi",
    "/opt/wasi-sdk/share/wasi-sysroot/lib/wasm32-wasip1",
)
RUSTUP_TIMEOUT_S: Final = 300
STD_BUILD_TIMEOUT_S: Final = 1800
_PLACEHOLDER_CRATE: Final = "cratecage_std_build"

Log = Callable[..., None]  # log(event, **fields): a structlog method, e.g. shim.log.get_logger(...).info


def make_capable(compiler: Compiler, environ: Mapping[str, str], *, log: Log) -> list[str]:
    """Try each route; return [] when the compiler is now capable, else why each route failed."""
    reasons: list[str] = []
    name = rustup_toolchain(compiler, environ)
    if name is None or find_rustup(environ) is None:
        reasons.append("not managed by rustup")
    else:
        log("running rustup target add", target=WASM_TARGET, toolchain=name)
        why = rustup_target_add(name, environ)
        if why is None:
            return []
        reasons.append(f"`rustup target add {WASM_TARGET}` failed ({why})")
    missing = missing_for_build(compiler, environ)
    if missing:
        return reasons + missing
    build_private_sysroot(compiler, environ, log=log)
    return []


def rustup_toolchain(compiler: Compiler, environ: Mapping[str, str]) -> str | None:
    """rustup's name of this compiler's toolchain, when its sysroot is one of rustup's toolchains."""
    parent = os.path.join(os.path.realpath(rustup_home(environ)), "toolchains")
    sysroot = os.path.realpath(compiler.sysroot)
    return os.path.basename(sysroot) if os.path.dirname(sysroot) == parent else None


def find_rustup(environ: Mapping[str, str]) -> str | None:
    """The rustup program: in cargo's CARGO_HOME (set for every rustc call), on PATH, or in ~/.cargo."""
    home = environ.get("CARGO_HOME") or os.path.join(os.path.expanduser("~"), ".cargo")
    for candidate in (os.path.join(home, "bin", "rustup"), shutil.which("rustup", path=environ.get("PATH"))):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def rustup_target_add(toolchain: str, environ: Mapping[str, str]) -> str | None:
    """`rustup target add wasm32-wasip1 --toolchain <toolchain>`: None on success, else rustup's error."""
    rustup = find_rustup(environ)
    if rustup is None:
        return "no rustup found"
    try:
        done = subprocess.run([rustup, "target", "add", WASM_TARGET, "--toolchain", toolchain],
                              capture_output=True, text=True, timeout=RUSTUP_TIMEOUT_S,
                              env=scrubbed_env(environ))
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if done.returncode != 0:
        errors = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("error")]
        return (errors or done.stderr.strip().splitlines() or ["no output"])[-1].strip()
    return None


def rust_src_library(compiler: Compiler) -> Path | None:
    lib = Path(compiler.sysroot) / "lib" / "rustlib" / "src" / "rust" / "library"
    return lib if (lib / "std" / "Cargo.toml").is_file() and (lib / "Cargo.lock").is_file() else None


def find_wasi_libc(environ: Mapping[str, str]) -> Path | None:
    dirs: list[str] = []
    if environ.get("WASI_SYSROOT"):
        root = environ["WASI_SYSROOT"]
        dirs += [os.path.join(root, "lib", "wasm32-wasip1"), os.path.join(root, "lib", "wasm32-wasi")]
    for d in (*dirs, *WASI_LIBC_DIRS):
        if os.path.isfile(os.path.join(d, "crt1-command.o")) and os.path.isfile(os.path.join(d, "libc.a")):
            return Path(d)
    return None


def find_rust_lld(compiler: Compiler, environ: Mapping[str, str]) -> str | None:
    own = os.path.join(compiler.sysroot, "lib", "rustlib", compiler.host, "bin", "rust-lld")
    if os.access(own, os.X_OK):
        return own
    return shutil.which("rust-lld", path=environ.get("PATH")) or (
        "/usr/bin/rust-lld" if os.access("/usr/bin/rust-lld", os.X_OK) else None
    )


def missing_for_build(compiler: Compiler, environ: Mapping[str, str]) -> list[str]:
    missing = []
    if rust_src_library(compiler) is None:
        missing.append("no rust-src for this compiler (rustup component add rust-src; Debian: rust-web-src)")
    if compiler.sibling("cargo") is None:
        missing.append("no cargo beside this rustc")
    if find_wasi_libc(environ) is None:
        missing.append("no wasi-libc (crt1-command.o, libc.a; Debian: wasi-libc, or set WASI_SYSROOT)")
    if find_rust_lld(compiler, environ) is None:
        missing.append("no rust-lld (Debian: rust-web-llvm lld-22)")
    return missing


def build_private_sysroot(compiler: Compiler, environ: Mapping[str, str], *, log: Log) -> Path:
    """Build std for wasm32-wasip1 with this compiler and install it as its private sysroot."""
    library = rust_src_library(compiler)
    cargo = compiler.sibling("cargo")
    wasi_libc = find_wasi_libc(environ)
    lld = find_rust_lld(compiler, environ)
    assert library and cargo and wasi_libc and lld, "checked by missing_for_build"
    final = private_sysroot(compiler, environ)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / "install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "lib" / "rustlib" / WASM_TARGET / COMPLETE_MARKER).is_file():
            return final  # another install finished while we waited
        work = final.parent / "std-build"
        shutil.rmtree(work, ignore_errors=True)
        rlibs = _cargo_build_std(compiler, cargo, library, work, environ, log=log)
        staging = Path(tempfile.mkdtemp(prefix="sysroot.", dir=final.parent))
        target_lib = staging / "lib" / "rustlib" / WASM_TARGET / "lib"
        (target_lib / "self-contained").mkdir(parents=True)
        for rlib in rlibs:
            shutil.copy2(rlib, target_lib / rlib.name)
        for obj in sorted([*wasi_libc.glob("*.o"), *wasi_libc.glob("*.a")]):
            shutil.copy2(obj, target_lib / "self-contained" / obj.name)
        host_bin = staging / "lib" / "rustlib" / compiler.host / "bin"
        host_bin.mkdir(parents=True)
        (host_bin / "rust-lld").symlink_to(lld)
        info = {"rustc": compiler.rustc, "verbose_version": compiler.verbose_version,
                "rust_src": str(library), "wasi_libc": str(wasi_libc), "rust_lld": lld,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (staging / "lib" / "rustlib" / WASM_TARGET / COMPLETE_MARKER).write_text(json.dumps(info, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
        shutil.rmtree(work, ignore_errors=True)
    log("wasm32-wasip1 std installed", sysroot=str(final))
    return final


def _cargo_build_std(compiler: Compiler, cargo: str, library: Path, work: Path,
                     environ: Mapping[str, str], *, log: Log) -> list[Path]:
    (work / "src").mkdir(parents=True)
    (work / "Cargo.toml").write_text(
        f'[package]\nname = "{_PLACEHOLDER_CRATE}"\nversion = "0.0.0"\nedition = "2021"\n'
        '[lib]\npath = "src/lib.rs"\n[profile.release]\ndebug = false\n'
    )
    (work / "src" / "lib.rs").write_text("#![no_std]\n")
    vendor = library / "vendor"
    offline = vendor.is_dir()
    cargo_home = work / "cargo-home" if offline else None
    if offline:
        (work / ".cargo").mkdir()
        (work / ".cargo" / "config.toml").write_text(
            '[source.crates-io]\nreplace-with = "vendored"\n'
            f'[source.vendored]\ndirectory = "{vendor}"\n'
        )
    env = scrubbed_env(environ)
    env.update({"RUSTC": compiler.rustc, "RUSTC_BOOTSTRAP": "1", "CARGO_TARGET_DIR": str(work / "target"),
                "CARGO_TERM_COLOR": "never", "CARGO_TERM_PROGRESS_WHEN": "never",
                "CARGO_ENCODED_RUSTFLAGS": "", "RUSTC_WRAPPER": "", "RUSTC_WORKSPACE_WRAPPER": ""})
    env.pop("CARGO_BUILD_TARGET", None)
    if cargo_home:
        env["CARGO_HOME"] = str(cargo_home)
    cmd = [cargo, "build", "--release", "-Zbuild-std=std,panic_abort", "--target", WASM_TARGET]
    if offline:
        cmd.append("--offline")
    source = "rust-src's vendored crates" if offline else "crates.io"
    log(f"building std for {WASM_TARGET}, about a minute", compiler=compiler.version_line, deps=source)
    _run_with_progress(cmd, cwd=work, env=env, log=log)
    profile = work / "target" / WASM_TARGET / "release"
    rlibs = sorted(p for p in map(Path, layout.unit_outputs(str(profile), "lib*.rlib"))
                   if not p.name.startswith(f"lib{_PLACEHOLDER_CRATE}-"))
    if not any(p.name.startswith("libstd-") for p in rlibs):
        raise ProvisionError(f"the std build finished but left no libstd rlib in {profile}")
    return rlibs


def _run_with_progress(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Log) -> None:
    start = time.monotonic()
    tail: list[str] = []
    count = 0
    tty = sys.stderr.isatty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, errors="replace")
    assert proc.stderr is not None
    for line in proc.stderr:
        line = line.rstrip("\n")
        tail = (tail + [line])[-40:]
        word = line.strip().split(" ", 2)
        if word[0] == "Compiling" and len(word) > 1:
            count += 1
            elapsed = round(time.monotonic() - start, 1)
            if tty:
                sys.stderr.write(f"\rcratecage:   [{count:>2}] {word[1]:<28} {elapsed:5.1f}s")
                sys.stderr.flush()
            else:
                log("compiling", step=count, crate=word[1], seconds=elapsed)
    try:
        code = proc.wait(timeout=STD_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -9
    if tty:
        sys.stderr.write("\n")
    if code != 0:
        raise ProvisionError(
            f"building std for {WASM_TARGET} failed (exit {code}) after {time.monotonic() - start:.0f}s; "
            "last output:\n    " + "\n    ".join(tail[-15:]),
        )
    log("std build finished", crates=count, seconds=round(time.monotonic() - start))


SMOKE_SOURCE: Final = 'fn main() { let v: Vec<String> = std::env::args().collect(); println!("ok {}", v.len()); }\n'


def smoke_test(tc: Toolchain, environ: Mapping[str, str]) -> None:
    """Compile a tiny program for wasm32-wasip1 with this toolchain and run it under wasmtime."""
    assert tc.wasm_sysroot is not None
    scratch = cache_root(environ) / "toolchains" / tc.compiler.key
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="smoke.") as tmp:
        src = Path(tmp) / "smoke.rs"
        src.write_text(SMOKE_SOURCE)
        out = Path(tmp) / "smoke.wasm"
        cmd = [tc.compiler.rustc, "--edition=2021", "--target", WASM_TARGET, "--sysroot", tc.wasm_sysroot,
               "-o", str(out), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=scrubbed_env(environ))
        if done.returncode != 0:
            raise ProvisionError(
                f"{tc.compiler.rustc} cannot link a wasm32-wasip1 program with sysroot {tc.wasm_sysroot}:\n    "
                + "\n    ".join(done.stderr.strip().splitlines()[-10:]),
                hint=f"rerun `{program.command('toolchain install')}`; if it persists, remove the sysroot directory",
            )
        text = run_wasm_command(out, ["smoke", "a"])
        if text.strip() != "ok 2":
            raise ProvisionError(f"a wasm32-wasip1 test program printed {text!r}, expected 'ok 2'")


def run_wasm_command(module_path: Path, argv: list[str]) -> str:
    """Run a WASI command module with no grants beyond argv; return its stdout."""
    import wasmtime

    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = wasmtime.Module.from_file(engine, str(module_path))
    with tempfile.TemporaryDirectory(prefix="cratecage-smoke.") as tmp:
        out = os.path.join(tmp, "stdout")
        wasi = wasmtime.WasiConfig()
        wasi.argv = argv
        wasi.stdout_file = out
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        try:
            linker.instantiate(store, module).exports(store)["_start"](store)
        except wasmtime.ExitTrap as trap:
            if trap.code != 0:
                raise ProvisionError(f"the wasm test program exited with {trap.code}") from None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            raise ProvisionError(f"the wasm test program failed under wasmtime: {err}") from None
        return Path(out).read_text()


def candidates(rustc: str | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Compilers to try, best first: the one asked for, else $RUSTC, `rustc` on PATH, Debian's rustc-web."""
    if rustc:
        return [rustc]
    found = [environ.get("RUSTC", ""), "rustc", "/usr/bin/rustc"]
    return [c for i, c in enumerate(found) if c and c not in found[:i]]


def install(rustc: str | None = None, environ: Mapping[str, str] = os.environ, *, log) -> Toolchain:
    """Make a compiler wasm32-wasip1-capable, select it and prove it by running a wasm program."""
    problems: list[str] = []
    seen: set[str] = set()
    for candidate in candidates(rustc, environ):
        try:
            compiler = probe_compiler(candidate, environ)
        except ToolchainError as err:
            problems.append(f"{candidate}: {err.message}")
            continue
        if compiler.key in seen:
            continue
        seen.add(compiler.key)
        tc = toolchain_for(compiler, environ)
        if not tc.ready:
            reasons = make_capable(compiler, environ, log=log)
            if reasons:
                problems.append(f"{compiler.rustc} ({compiler.version_line}): " + "; ".join(reasons))
                log("cannot use this compiler", rustc=compiler.rustc, why="; ".join(reasons))
                continue
            tc = toolchain_for(compiler, environ)
        smoke_test(tc, environ)
        save_selected(tc, environ)
        return tc
    hint = f"on Debian/Ubuntu: {DEBIAN_INSTALL} (then rerun); elsewhere: rustup target add wasm32-wasip1"
    raise ProvisionError(
        "no compiler here can be made to compile for wasm32-wasip1:\n  " + "\n  ".join(problems), hint=hint
    )
