"""shim.host.probe with the real rustc of the selected toolchain: probes real build scripts send work, refused
ones name the flag, and a probe cannot learn a host file's bytes through its exit status."""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import pytest

from shim.cargo import rustc_args
from shim.confine import landlock
from shim.host import abi, probe
from shim.host.context import RunContext
from shim.toolchain import compiler as toolchain

from root_dirs import not_roots, root_dir  # noqa: F401 - a fixture

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
    (["-l/etc/passwd", "-"], "-l/etc/passwd"),
    (["--unpretty=expanded", "-"], "--unpretty=expanded"),
    (["--target", "wasm32-unknown-unknown", "-"], "--target wasm32-unknown-unknown"),
    (["--crate-type=cdylib", "--emit=link", "-"], "--crate-type cdylib"),
    (["--crate-type=dylib", "-"], "--crate-type dylib"),
    (["--crate-type=bin,proc-macro", "-"], "--crate-type bin,proc-macro"),
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


@needs_landlock
def test_an_input_in_a_target_directory_of_the_package_is_refused_however_it_is_reached(ctx: RunContext) -> None:
    """Other crates' build state: a linking probe reads its input by its real path, so neither the path nor a
    link the script planted in OUT_DIR may lead there (the probe's read set leaves target directories out)."""
    target = Path(ctx.package_dir, "target")
    generated = target / "debug" / "build" / "other-0123" / "out" / "gen.rs"
    generated.parent.mkdir(parents=True)
    (target / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    generated.write_text("fn main() {}\n")
    Path(ctx.out_dir, "probe.rs").symlink_to(generated)
    for word in ("target/debug/build/other-0123/out/gen.rs", f"{ctx.out_dir}/probe.rs"):
        assert "cargo target directory" in denied(ctx, "--crate-type=bin", word).reason
    Path(ctx.package_dir, "src", "probe", "main.rs").write_text("fn main() {}\n")  # the twin, in the package
    assert rustc(ctx, "--crate-type=bin", "src/probe/main.rs", "--out-dir", ctx.out_dir).exit_code == 0


# -- the include_bytes! bit leak -----------------------------------------------------------------------------

def test_a_probe_sees_no_variable_of_the_script_the_request_or_the_host(tmp_path: Path, compiler: toolchain.Compiler,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`env!`/`option_env!` at compile time would put a token's bits in the exit status: the probe's
    environment is fixed (probe_env), whatever the script had, asked for or the host holds."""
    ctx = make_ctx(tmp_path, compiler, RED11_TOKEN="1")
    ctx.host_env["RED11_TOKEN"] = "1"
    monkeypatch.setenv("RED11_TOKEN", "1")
    req = abi.SpawnRequest(program=ctx.env["RUSTC"], args=["--crate-type=lib", "--emit=metadata", "-"],
                           env_ops=[("set", "RED11_TOKEN", "1")])
    for source, status in (('const _: () = assert!(option_env!("RED11_TOKEN").is_none());', 0),
                           ('const _: &str = env!("RED11_TOKEN");', 1),
                           ('const _: () = assert!(option_env!("PATH").is_some());', 0)):  # the twin
        assert probe.run_probe(ctx, req, source.encode()).exit_code == status, source



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


# -- `-o -` (rustix 0.38) ------------------------------------------------------------------------------------

def rustix_probe(ctx: RunContext, source: str, *extra: str) -> probe.ProbeResult:
    """rustix 0.38's can_compile, argument for argument: the output goes to stdout."""
    return rustc(ctx, "--crate-type=rlib", "--emit=metadata", "--target", ctx.env["TARGET"], "-o", "-", *extra,
                 "-", stdin=source.encode())


def test_a_rustix_probe_writing_to_stdout_compiles_and_returns_nothing_but_its_status(ctx: RunContext) -> None:
    assert rustix_probe(ctx, "pub fn f() {}\n") == probe.ProbeResult(0, b"")  # rustc wrote the rmeta there
    assert rustix_probe(ctx, "pub type T = NoSuchType;\n").exit_code != 0
    assert os.listdir(ctx.out_dir) == []


def test_output_on_stdout_never_comes_back_even_what_the_probe_included(ctx: RunContext) -> None:
    Path(ctx.package_dir, "data").write_bytes(b"cratecage-marker-bytes")
    source = f'pub static D: &[u8] = include_bytes!("{ctx.package_dir}/data");\n'
    result = rustc(ctx, "--crate-type=lib", "--emit=llvm-ir", "-o", "-", "-", stdin=source.encode())
    assert result == probe.ProbeResult(0, b"")


@pytest.mark.parametrize("query", [["--print=native-static-libs"], ["--print", "cfg"], ["-vV"], ["--version"]])
def test_output_on_stdout_with_a_query_is_refused_and_the_query_alone_answers(ctx: RunContext,
                                                                             query: list[str]) -> None:
    args = ["--crate-type=staticlib", *query]
    assert denied(ctx, *args, "-o", "-", "-", stdin=b"pub fn f() {}").target == "-o -"
    assert rustc(ctx, *args, "-", stdin=b"pub fn f() {}").exit_code == 0  # the twin: no `-o -`


# -- `-l` and links (libudev-sys) ----------------------------------------------------------------------------

def link_probe(ctx: RunContext, lib: str, symbol: str = "zlibVersion", attrs: str = "") -> int:
    """libudev-sys's check_func, argument for argument: a file in OUT_DIR, linked into OUT_DIR with `-l`."""
    source = Path(ctx.out_dir, f"check_{symbol}.rs")
    source.write_text(f'{attrs}extern "C" {{ fn {symbol}(); }}\nfn main() {{ unsafe {{ {symbol}(); }} }}\n')
    args = [str(source), "--out-dir", ctx.out_dir, *(["-l", lib] if lib else [])]
    return probe.run_probe(ctx, request("rustc", *args), b"").exit_code


@needs_landlock
@pytest.mark.parametrize("lib", ["z", "static=z", "dylib=z"])
def test_a_probe_links_a_system_library_and_not_a_missing_one(ctx: RunContext, lib: str) -> None:
    assert link_probe(ctx, lib) == 0
    assert link_probe(ctx, lib.replace("z", "cratecage_no_such_library")) != 0  # runs, fails: "not linkable"
    assert sorted(os.listdir(ctx.out_dir)) == ["check_zlibVersion.rs"]  # the executable went to the throwaway


def test_a_library_that_is_not_roots_through_and_through_needs_a_grant(ctx: RunContext, root_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from shim.confine import syslibs

    monkeypatch.setattr(syslibs, "default_dirs", lambda: [str(root_dir)])
    (root_dir / "libcratecage_users.so").write_bytes(b"")
    not_roots(root_dir / "libcratecage_users.so")
    assert "not owned by root" in denied(ctx, "-l", "cratecage_users", "--crate-type=lib", "-").reason
    (root_dir / "libcratecage_roots.so").write_bytes(b"")
    assert rustc(ctx, "-l", "cratecage_roots", "--crate-type=lib", "-").exit_code == 0  # the twin: root's
    root_dir.chmod(0o775)  # a directory a group may write, as /usr/local/lib once was on Debian
    assert "writable by users other than root" in denied(ctx, "-l", "cratecage_roots", "--crate-type=lib", "-").reason


@needs_landlock
def test_a_probe_links_a_library_the_policy_grants(ctx: RunContext, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from shim.confine import syslibs
    from shim.policy.load import load_text

    name = "cratecage_granted_only"
    (tmp_path / f"lib{name}.so").write_bytes(b"")  # found where anyone may write: not a system library
    monkeypatch.setattr(syslibs, "default_dirs", lambda: [str(tmp_path)])
    assert denied(ctx, "-l", name, "--crate-type=lib", "-").target == f"-l {name}"
    text = f'[permissions.build.demo]\ndirectives = {{ action = "permit", list = ["rustc-link-lib={name}"] }}\n'
    ctx.grant = load_text(text, file="t.toml", base=tmp_path, where="top-level").resolve("build", "demo", "0.1.0")
    assert link_probe(ctx, name) != 0  # allowed, and not found without a -L, as natively


@pytest.mark.parametrize("value", [
    "/usr/lib/x86_64-linux-gnu/libz.a", "../../out/planted", "z:renamed", "static:+verbatim=libz.a",
    "dylib:+as-needed=z", "framework=z", "link-arg=-fuse-ld=/tmp/evil", "static=", "-z",
])
def test_a_library_named_with_a_path_kind_modifier_or_rename_is_refused(ctx: RunContext, value: str) -> None:
    assert denied(ctx, "--crate-type=lib", "--emit=metadata", "-l", value, "-").target == f"-l {value}"
    assert rustc(ctx, "--crate-type=lib", "--emit=metadata", "-l", "z", "-").exit_code == 0  # the twin


def plant_library(ctx: RunContext, tmp_path: Path, symbol: str) -> Path:
    """A real static library in OUT_DIR defining `symbol`: what a build script could leave there."""
    obj = tmp_path / f"{symbol}.o"
    subprocess.run(["cc", "-c", "-x", "c", "-o", str(obj), "-"], input=f"void {symbol}(void) {{}}\n", text=True,
                   check=True)
    archive = Path(ctx.out_dir, "libplanted.a")
    subprocess.run(["ar", "rcs", str(archive), str(obj)], check=True)
    return archive


def verbatim_link(path: Path) -> str:
    """A `#[link]` that reaches `path` from every directory the linker searches, by `..`."""
    return f'#[link(name = "{"../" * 12}{str(path).lstrip("/")}", kind = "dylib", modifiers = "+verbatim")]\n'


@needs_landlock
def test_a_library_planted_in_out_dir_is_never_linked(ctx: RunContext, tmp_path: Path) -> None:
    planted = plant_library(ctx, tmp_path, "planted_fn")
    assert link_probe(ctx, "planted", "planted_fn") != 0  # no -L: the linker never looks in OUT_DIR
    assert link_probe(ctx, "", "planted_fn", attrs=verbatim_link(planted)) != 0  # nor may it read there
    # The twin: the same `..` trick into the system's own library directory links.
    system = next(Path(d) / "libz.a" for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
                  if (Path(d) / "libz.a").exists())
    assert link_probe(ctx, "", "zlibVersion", attrs=verbatim_link(system)) == 0


@needs_landlock
def test_a_linking_probe_reads_its_own_source_and_no_other_package_file(ctx: RunContext) -> None:
    Path(ctx.package_dir, "one").write_bytes(b"\x01")
    include = f'const S: &[u8] = include_bytes!("{ctx.package_dir}/one");\n'
    assert compile_stdin(ctx, include) == 0  # the twin: a compile that does not link reads the package
    assert link_probe(ctx, "z", attrs=include) != 0


def test_without_landlock_a_probe_never_links(ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    monkeypatch.setattr(landlock, "unavailable_reason", lambda: "the kernel has no Landlock (ENOSYS)")
    assert "Landlock" in denied(ctx, "--crate-type=bin", "-").reason
    assert rustc(ctx, "--crate-type=lib", "--emit=metadata", "-", stdin=b"").exit_code == 0  # the twin
