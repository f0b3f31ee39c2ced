"""shim.probe with the real rustc of the selected toolchain: probes real build scripts send work, refused
ones name the flag, and a probe cannot learn a host file's bytes through its exit status."""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import pytest

from shim import abi, landlock, probe, rustc_args, toolchain
from shim.runctx import RunContext

WRAPPER = "/opt/cratecage/bin/cratecage"  # what cargo passed as RUSTC_WRAPPER (never executed here)
WORKSPACE_WRAPPER = "/opt/tc/bin/clippy-driver"
needs_landlock = pytest.mark.skipif(landlock.abi_version() == 0, reason="Landlock unavailable")


@pytest.fixture(scope="module")
def compiler() -> toolchain.Compiler:
    return toolchain.resolve().compiler


def make_ctx(tmp_path: Path, compiler: toolchain.Compiler, **env: str) -> RunContext:
    package, out, tmp = tmp_path / "pkg", tmp_path / "target" / "out", tmp_path / "run-tmp"
    for d in (package / "src" / "probe", out, tmp):
        d.mkdir(parents=True, exist_ok=True)
    guest_env = {"RUSTC": compiler.rustc, "RUSTC_WRAPPER": WRAPPER, "TARGET": compiler.host,
                 "HOST": compiler.host, "OUT_DIR": str(out), "CARGO_MANIFEST_DIR": str(package),
                 "CARGO_ENCODED_RUSTFLAGS": "", **env}
    return RunContext(crate="demo", version="0.1.0", package_dir=str(package), out_dir=str(out),
                      tmp_dir=str(tmp), env=guest_env, host_env={}, rustc=compiler.rustc,
                      sysroot=compiler.sysroot)


@pytest.fixture
def ctx(tmp_path: Path, compiler: toolchain.Compiler) -> RunContext:
    return make_ctx(tmp_path, compiler)


def request(program: str, *args: str, env_ops=(), cwd: str | None = None) -> abi.SpawnRequest:
    return abi.SpawnRequest(program=program, args=list(args), env_ops=list(env_ops), cwd=cwd)


def rustc(ctx: RunContext, *args: str, stdin: bytes = b"") -> probe.ProbeResult:
    """The guest runs `$RUSTC_WRAPPER $RUSTC args`, as autocfg and proc-macro2 do."""
    return probe.run_probe(ctx, request(WRAPPER, ctx.env["RUSTC"], *args), stdin)


def compile_stdin(ctx: RunContext, source: str) -> int:
    """An autocfg 1.5 probe, argument for argument."""
    return rustc(ctx, "--crate-name", "autocfg_0123456789abcdef_0", "--crate-type=lib", "--out-dir",
                 ctx.out_dir, "--emit=llvm-ir", "--target", ctx.env["TARGET"], "-", stdin=source.encode()).exit_code


def denied(ctx: RunContext, *args: str, stdin: bytes = b"") -> probe.ProbeDenied:
    with pytest.raises(probe.ProbeDenied) as info:
        rustc(ctx, *args, stdin=stdin)
    return info.value


# -- recognising the compiler ----------------------------------------------------------------------------

@pytest.mark.parametrize("words", [
    ["$RUSTC", "-vV"],
    ["rustc", "--version"],
    ["$RUSTC_WRAPPER", "$RUSTC", "--version"],
    ["$RUSTC_WRAPPER", "$RUSTC_WORKSPACE_WRAPPER", "$RUSTC", "-vV"],
    ["$RUSTC_WORKSPACE_WRAPPER", "$RUSTC", "--version"],
])
def test_cargo_style_chains_from_ctx_env_are_compiler_requests(ctx: RunContext, words: list[str]) -> None:
    ctx.env["RUSTC_WORKSPACE_WRAPPER"] = WORKSPACE_WRAPPER
    req = request(*[ctx.env.get(w[1:], w) if w.startswith("$") else w for w in words])
    assert probe.is_compiler_request(ctx, req)


@pytest.mark.parametrize("words", [
    ["/bin/sh", "-c", "cat /etc/passwd"],
    ["$RUSTC_WRAPPER", "/bin/sh", "-vV"],
    ["$RUSTC_WRAPPER", "--version"],
    ["/usr/bin/env", "rustc", "-vV"],
    ["$RUSTC_WORKSPACE_WRAPPER", "$RUSTC", "-vV"],  # cargo gave no workspace wrapper here
])
def test_other_programs_are_not_compiler_requests(ctx: RunContext, words: list[str]) -> None:
    req = request(*[ctx.env.get(w[1:], "/opt/guest-chosen") if w.startswith("$") else w for w in words])
    assert not probe.is_compiler_request(ctx, req)


def test_a_wrapper_the_guest_sets_in_its_own_env_is_not_the_wrapper(ctx: RunContext) -> None:
    req = request("/bin/sh", ctx.env["RUSTC"], "-vV", env_ops=[("set", "RUSTC_WRAPPER", "/bin/sh")])
    assert not probe.is_compiler_request(ctx, req)
    with pytest.raises(probe.ProbeDenied) as info:
        probe.run_probe(ctx, req, b"")
    assert info.value.target == "/bin/sh"


def test_the_host_runs_ctx_rustc_never_the_program_the_guest_named(tmp_path: Path,
                                                                   compiler: toolchain.Compiler) -> None:
    marker = tmp_path / "ran"
    fake = tmp_path / "fake-rustc"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\necho fake\n")
    fake.chmod(0o755)
    ctx = make_ctx(tmp_path, compiler, RUSTC=str(fake))
    result = probe.run_probe(ctx, request(str(fake), "-vV"), b"")
    assert result.stdout.decode() == compiler.verbose_version
    assert not marker.exists()


# -- what probes get back ----------------------------------------------------------------------------------

def test_a_version_query_returns_the_real_rustc_vv_output(ctx: RunContext, compiler: toolchain.Compiler) -> None:
    real = subprocess.run([compiler.rustc, "-vV"], capture_output=True, check=True).stdout
    assert rustc(ctx, "-vV") == probe.ProbeResult(0, real)
    assert rustc(ctx, "--verbose", "--version").stdout == real  # version_check
    assert rustc(ctx, "--version").stdout == real.splitlines(keepends=True)[0]  # anyhow, serde, libc


def test_a_print_query_returns_stdout(ctx: RunContext, compiler: toolchain.Compiler) -> None:
    real = subprocess.run([compiler.rustc, "--print", "cfg"], capture_output=True, check=True).stdout
    assert rustc(ctx, "--print", "cfg").stdout == real


def test_cargos_target_info_probe_is_answered(ctx: RunContext) -> None:
    result = rustc(ctx, "-", "--crate-name", "___", "--print=file-names", "--crate-type", "bin",
                   "--crate-type", "proc-macro", "--print=sysroot", "--print=cfg", "-Wwarnings")
    assert result.exit_code == 0 and result.stdout.startswith(b"___\n")


def test_an_autocfg_probe_compiles_and_invalid_code_does_not(ctx: RunContext) -> None:
    assert compile_stdin(ctx, "pub type Probe = i128;") == 0
    assert compile_stdin(ctx, "pub type Probe = NoSuchType;") != 0
    assert os.listdir(ctx.out_dir) == []  # outputs went to a throwaway directory


def test_a_compile_returns_no_stdout(ctx: RunContext) -> None:
    assert rustc(ctx, "--crate-type=lib", "--emit=metadata", "-", stdin=b"pub fn f() {}").stdout == b""


def test_a_proc_macro2_probe_of_a_package_file_compiles(ctx: RunContext) -> None:
    Path(ctx.package_dir, "src", "probe", "proc_macro_span.rs").write_text("pub fn probe() {}\n")
    ctx.env["CARGO_ENCODED_RUSTFLAGS"] = "--cfg\x1fowner_flag"
    args = ["--cfg=procmacro2_build_probe", "--edition=2021", "--crate-name=proc_macro2", "--crate-type=lib",
            "--cap-lints=allow", "--emit=dep-info,metadata", "--out-dir", os.path.join(ctx.out_dir, "probe"),
            "src/probe/proc_macro_span.rs", "--target", ctx.env["TARGET"], "--cfg", "owner_flag"]
    assert probe.run_probe(ctx, request(WRAPPER, ctx.env["RUSTC"], *args), b"").exit_code == 0


def test_a_rustix_probe_with_o_under_out_dir_compiles_into_the_throwaway(ctx: RunContext) -> None:
    out = os.path.join(ctx.out_dir, "rustix_test_can_compile")
    result = rustc(ctx, "--crate-type=rlib", "--emit=metadata", "--target", ctx.env["TARGET"], "-o", out, "-",
                   stdin=b"pub fn f() {}\n")
    assert result.exit_code == 0 and not os.path.exists(out)


def test_the_owners_rustflags_pass_verbatim(ctx: RunContext) -> None:
    ctx.env["CARGO_ENCODED_RUSTFLAGS"] = "-C\x1flink-arg=-Wl,--as-needed"
    assert rustc(ctx, "--crate-type=lib", "--emit=metadata", "-C", "link-arg=-Wl,--as-needed", "-",
                 stdin=b"pub fn f() {}").exit_code == 0
    assert denied(ctx, "-C", "link-arg=-Wl,--other", "-").target == "-C link-arg=-Wl,--other"


# -- refusals ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, target", [
    (["-Zunpretty=expanded", "-"], "-Zunpretty=expanded"),
    (["-Z", "time-passes", "-"], "-Z time-passes"),
    (["-C", "linker=/bin/sh", "--crate-type=lib", "-"], "-C linker=/bin/sh"),
    (["-Clink-arg=-Wl,-T,/etc/passwd", "-"], "-Clink-arg=-Wl,-T,/etc/passwd"),
    (["-C", "llvm-args=-load=/tmp/x.so", "-"], "-C llvm-args=-load=/tmp/x.so"),
    (["-C", "incremental=/tmp/x", "-"], "-C incremental=/tmp/x"),
    (["--extern", "evil=/tmp/libevil.rlib", "-"], "--extern evil=/tmp/libevil.rlib"),
    (["@/tmp/args", "-"], "@/tmp/args"),
    (["-o", "/tmp/x", "--crate-type=lib", "-"], "-o /tmp/x"),
    (["--out-dir", "/tmp", "--crate-type=lib", "-"], "--out-dir /tmp"),
    (["--emit=metadata=/tmp/x.rmeta", "--crate-type=lib", "-"], "--emit=metadata=/tmp/x.rmeta"),
    (["--print=cfg=/tmp/cfg"], "--print=cfg=/tmp/cfg"),
    (["--sysroot", "/tmp/sysroot", "-"], "--sysroot /tmp/sysroot"),
    (["-L", "/tmp", "-"], "-L /tmp"),
    (["-lfoo", "-"], "-lfoo"),
    (["--unpretty=expanded", "-"], "--unpretty=expanded"),
    (["--target", "wasm32-unknown-unknown", "-"], "--target wasm32-unknown-unknown"),
    (["--crate-type=bin", "-"], "--crate-type bin"),
    (["--crate-type=cdylib", "--emit=link", "-"], "--crate-type cdylib"),
    (["-"], "--crate-type (default: bin)"),
    (["/etc/hostname"], "/etc/hostname"),
    (["--crate-type=lib", "-", "src/lib.rs"], "- " + "{pkg}/src/lib.rs"),
    (["--no-such-flag", "-"], "--no-such-flag"),
    ([], "rustc"),
])
def test_refused_probes_name_the_flag(ctx: RunContext, args: list[str], target: str) -> None:
    Path(ctx.package_dir, "src", "lib.rs").write_text("")
    err = denied(ctx, *args)
    assert err.target == target.format(pkg=os.path.realpath(ctx.package_dir))
    assert err.reason


def test_an_input_reached_through_dotdot_or_a_symlink_is_resolved(ctx: RunContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside.rs"
    outside.write_text("pub fn f() {}\n")
    Path(ctx.package_dir, "link.rs").symlink_to(outside)
    assert denied(ctx, "--crate-type=lib", "--emit=metadata", "../outside.rs").target == "../outside.rs"
    assert denied(ctx, "--crate-type=lib", "--emit=metadata", "link.rs").target == "link.rs"


# -- the include_bytes! bit leak -----------------------------------------------------------------------------

def bit_probe(path: Path) -> str:
    return (f'const S: &[u8] = include_bytes!("{path}");\n'
            "const _: () = assert!(S[0] & 1 == 1);\n")


@needs_landlock
def test_a_host_files_bits_do_not_reach_the_exit_status(ctx: RunContext, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    one, zero = secrets / "one", secrets / "zero"
    one.write_bytes(b"\x01")
    zero.write_bytes(b"\x00")
    assert os.access(one, os.R_OK)  # the test process itself can read them
    statuses = {compile_stdin(ctx, bit_probe(one)), compile_stdin(ctx, bit_probe(zero))}
    assert len(statuses) == 1 and statuses != {0}
    # rustc could not read the file at all: even a probe that only takes its length fails.
    assert compile_stdin(ctx, f'pub const N: usize = include_bytes!("{one}").len();') != 0


@needs_landlock
def test_a_package_files_bits_are_readable_as_before(ctx: RunContext) -> None:
    one, zero = Path(ctx.package_dir, "one"), Path(ctx.package_dir, "zero")
    one.write_bytes(b"\x01")
    zero.write_bytes(b"\x00")
    assert compile_stdin(ctx, bit_probe(one)) == 0
    assert compile_stdin(ctx, bit_probe(zero)) != 0


@needs_landlock
def test_a_probe_file_in_the_package_cannot_include_a_host_file(ctx: RunContext, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x01")
    Path(ctx.package_dir, "src", "probe", "leak.rs").write_text(bit_probe(secret))
    req = request(ctx.env["RUSTC"], "--crate-type=lib", "--emit=metadata", "src/probe/leak.rs")
    assert probe.run_probe(ctx, req, b"").exit_code != 0


def test_landlock_status_says_what_the_probes_get() -> None:
    status = probe.landlock_status()
    if landlock.abi_version():
        assert status == f"available (ABI {landlock.abi_version()})"
    else:
        assert status.startswith("unavailable: ")


# -- every installed toolchain, confined -----------------------------------------------------------------

def installed_compilers() -> list[str]:
    found = ["/usr/bin/rustc", *glob.glob(os.path.expanduser("~/.rustup/toolchains/*/bin/rustc"))]
    return [p for p in found if os.access(p, os.X_OK)]


@needs_landlock
@pytest.mark.parametrize("path", installed_compilers())
def test_probes_work_confined_with_each_installed_rustc(tmp_path: Path, path: str) -> None:
    ctx = make_ctx(tmp_path, toolchain.probe_compiler(path))
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x01")
    assert rustc(ctx, "-vV").stdout.startswith(b"rustc ")
    assert compile_stdin(ctx, "pub struct Probe;") == 0
    assert compile_stdin(ctx, bit_probe(secret)) != 0


# -- the table itself ----------------------------------------------------------------------------------------

def test_the_allowlist_names_only_flags_rustc_args_knows_and_is_sorted() -> None:
    known = {flag.names[0] for flag in rustc_args.FLAGS}
    assert set(probe.ALLOWED) <= known and set(probe.DENIED) <= known
    assert not set(probe.ALLOWED) & set(probe.DENIED)
    assert not probe.CODEGEN_ALLOWED & set(probe.CODEGEN_DENIED)
    assert list(probe.ALLOWED) == sorted(probe.ALLOWED) and list(probe.DENIED) == sorted(probe.DENIED)


# -- failures of the host side -------------------------------------------------------------------------------

def test_a_probe_over_the_time_limit_is_refused(ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "TIMEOUT_S", 0.001)
    assert "longer than" in denied(ctx, "-vV").reason


@needs_landlock
def test_a_probe_that_cannot_be_confined_never_runs(ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "read_set", lambda *_: [])  # rustc itself is then not executable
    assert "could not confine" in denied(ctx, "-vV").reason


def test_without_landlock_probes_still_run_and_the_status_says_why(ctx: RunContext,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    monkeypatch.setattr(landlock, "unavailable_reason", lambda: "the kernel has no Landlock (ENOSYS)")
    assert probe.landlock_status().startswith("unavailable: the kernel has no Landlock (ENOSYS)")
    assert compile_stdin(ctx, "pub struct Probe;") == 0
