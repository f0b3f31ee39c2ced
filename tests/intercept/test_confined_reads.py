"""What a confined native compile may read and run (shim.confine.rustc_grants), and the cwd of a dependency's link.

Real cargo through the real wrapper, on workspaces written here:
  - a workspace member whose build script prints `rustc-env` is compiled confined; its source can no longer
    read the workspace root (`.env`, `.git/config`) nor the target directory's build state, only its package
    and what the owner grants its build script; an ungranted read names cratecage, the crate and the entry;
  - a package outside the workspace ships a `libgcc_s.so.1` linker script naming a canary; its cdylib or
    proc-macro link runs in an empty directory, so the linker never finds that file (red1 finding 3);
  - a user's `-fuse-ld=mold` (a stand-in mold, found on PATH or through `-B`) links confined compiles too;
  - a proc macro that runs a program inside a confined compile fails with a `cratecage:` line saying why.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from shim.confine import landlock

from conftest import Cargo, CargoRun
from target_dirs import crate_outputs

pytestmark = pytest.mark.integration
needs_landlock = pytest.mark.skipif(landlock.abi_version() < 1, reason="needs Landlock to confine the compile")

TOKEN = "CANARY" + secrets.token_hex(8)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def confined(run: CargoRun) -> dict[str, str]:
    return {e["crate"]: e["why"] for e in run.trace if e["kind"] == "confined-compile"}


def snapshot(root: Path, skip: Path | None = None) -> set[Path]:
    """Everything under `root` but the target directory `skip` and cargo's own lock files."""
    return {p for p in root.rglob("*")
            if p.name != "Cargo.lock" and (skip is None or not (p == skip or skip in p.parents))}


def assert_no_token(run: CargoRun, *roots: Path, planted: Path | None = None) -> None:
    assert TOKEN not in run.proc.stdout + run.proc.stderr
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path != planted:
                assert TOKEN.encode() not in path.read_bytes(), "the canary reached a file of the build"


# -- a member's reads ---------------------------------------------------------------------------------------

MEMBER = {
    "Cargo.toml": '[workspace]\nmembers = ["app"]\nresolver = "2"\n',
    ".env": f"SECRET={TOKEN}\n",
    ".git/config": f"[remote]\n\turl = https://{TOKEN}@example.invalid/x\n",
    "shared/config.txt": "shared config\n",
    "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n',
    "app/build.rs": 'fn main() { println!("cargo:rustc-env=FLAVOR=confined"); }\n',
    "app/data.txt": "inside the package\n",
}
READS = {  # include_str! argument, relative to app/src/main.rs: (hostile?, granted by the owner?)
    "../data.txt": (False, False),
    "../../.env": (True, False),
    "../../.git/config": (True, False),
    "../../target/planted/output": (True, False),
    "../../shared/config.txt": (False, True),
}


@needs_landlock
@pytest.mark.parametrize("include", sorted(READS))
def test_a_confined_member_reads_its_package_and_its_grants_only(cargo: Cargo, tmp_path: Path,
                                                                 include: str) -> None:
    hostile, granted = READS[include]
    ws = tmp_path / "ws"
    write(ws, MEMBER)
    write(ws, {"target/planted/output": f"cargo:rustc-env=T={TOKEN}\n", "target/CACHEDIR.TAG": "Signature: "
               "8a477f597d28d172789f06886806bc55\n",
               "app/src/main.rs": f'fn main() {{ print!("{{}} {{}}", env!("FLAVOR"), include_str!("{include}")); }}\n'})
    if granted:
        write(ws, {"cratecage.toml": '[permissions.build.app]\n'
                                     'filesystem-access = { action = "permit", paths = ["shared/config.txt"] }\n'})
    before = snapshot(ws, ws / "target")
    run = cargo(ws, "run", "-q", wrapped=True, target_dir=ws / "target", check=False)
    assert confined(run).get("app") == "build script directives", run.trace
    if hostile:
        assert not run.ok
        assert "error: cratecage: the compile of `app`" in run.proc.stderr, run.proc.stderr[-3000:]
        assert 'filesystem-access = { action = "permit", paths = [' in run.proc.stderr
    else:
        assert run.ok, run.proc.stderr[-3000:]
        assert run.proc.stdout.startswith("confined ")
    assert_no_token(run, ws / "target", planted=ws / "target" / "planted" / "output")
    assert snapshot(ws, ws / "target") - before == set()


def test_an_ungranted_outside_read_is_named_with_the_entry_in_a_single_package(cargo: Cargo,
                                                                                tmp_path: Path) -> None:
    """The target directory inside the package (every single-package project) is not readable through it."""
    pkg = tmp_path / "single"
    write(pkg, {k[len("app/"):]: v for k, v in MEMBER.items() if k.startswith("app/")})
    write(pkg, {"target/planted/output": f"{TOKEN}\n",
                "src/main.rs": 'fn main() { print!("{}", include_str!("../target/planted/output")); }\n'})
    run = cargo(pkg, "build", "-q", wrapped=True, target_dir=pkg / "target", check=False)
    assert not run.ok
    assert "error: cratecage: the compile of `app`" in run.proc.stderr, run.proc.stderr[-3000:]
    assert_no_token(run, pkg / "target", planted=pkg / "target" / "planted" / "output")


# -- the cwd of a dependency's link ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["cdylib", "proc-macro"])
@pytest.mark.parametrize("hostile", [True, False])
def test_a_file_a_dependency_ships_is_not_found_through_its_links_cwd(cargo: Cargo, tmp_path: Path,
                                                                       targets: Path, kind: str,
                                                                       hostile: bool) -> None:
    canary = tmp_path / "secret" / "notes"
    write(tmp_path, {"secret/notes": f"{TOKEN}\n"})
    lib = '[lib]\ncrate-type = ["cdylib", "rlib"]\n' if kind == "cdylib" else "[lib]\nproc-macro = true\n"
    src = ("pub fn f() {}\n" if kind == "cdylib" else
           "use proc_macro::TokenStream;\n#[proc_macro]\npub fn m(_: TokenStream) -> TokenStream { TokenStream::new() }\n")
    use = "dep::f();" if kind == "cdylib" else "dep::m!();"
    write(tmp_path, {"dep/Cargo.toml": f'[package]\nname = "dep"\nversion = "0.1.0"\nedition = "2021"\n{lib}',
                     "dep/src/lib.rs": src,
                     "ws/Cargo.toml": '[workspace]\nmembers = ["app"]\nresolver = "2"\n',
                     "ws/app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n'
                                          '[dependencies]\ndep = { path = "../../dep" }\n',
                     "ws/app/src/main.rs": f'fn main() {{ {use} println!("linked"); }}\n'})
    if hostile:  # the members of the system's libgcc_s.so script, `GROUP(libgcc_s.so.1 -lgcc)`
        for name in ("libgcc_s.so.1", "libgcc.a", "libc.so.6"):
            (tmp_path / "dep" / name).write_text(f"INPUT({canary})\n")
    target = targets / f"cwd-{kind}-{hostile}"
    before = snapshot(tmp_path, target)
    run = cargo(tmp_path / "ws", "run", "-q", wrapped=True, target_dir=target, check=False)
    assert run.ok, run.proc.stderr[-3000:]
    assert run.proc.stdout == "linked\n"
    assert_no_token(run, target)
    assert snapshot(tmp_path, target) - before == set()


# -- the user's linker --------------------------------------------------------------------------------------

FAKE_MOLD = """#!/bin/sh
# a stand-in for mold: marks the output it linked, then links with the system's ld.bfd
prev=; for a in "$@"; do [ "$prev" = "-o" ] && : > "$a.mold"; prev=$a; done
exec ld.bfd "$@"
"""


@needs_landlock
@pytest.mark.parametrize("route", ["path", "prefix"])
def test_a_user_configured_linker_links_the_confined_compile(cargo: Cargo, tmp_path: Path, targets: Path,
                                                             route: str) -> None:
    tools = tmp_path / "tools"
    write(tools, {"ld.mold": FAKE_MOLD})
    (tools / "ld.mold").chmod(0o755)
    pkg = tmp_path / "moldy"
    write(pkg, {"Cargo.toml": '[package]\nname = "moldy"\nversion = "0.1.0"\nedition = "2021"\n',
                "build.rs": 'fn main() { println!("cargo:rustc-env=FLAVOR=mold"); }\n',
                "src/main.rs": 'fn main() { println!("{}", env!("FLAVOR")); }\n'})
    flags = "-C link-arg=-fuse-ld=mold -C link-self-contained=-linker -Zunstable-options"
    env = {"RUSTFLAGS": flags + (f" -C link-arg=-B{tools}" if route == "prefix" else ""), "RUSTC_BOOTSTRAP": "1"}
    if route == "path":
        env["PATH"] = f"{tools}:{cargo.env.get('PATH') or os.environ['PATH']}"
    for wrapped in (False, True):
        target = targets / f"mold-{route}-{wrapped}"
        run = cargo(pkg, "run", "-q", wrapped=wrapped, target_dir=target, extra_env=env, check=False)
        assert run.ok, run.proc.stderr[-3000:]
        assert run.proc.stdout == "mold\n"
        assert crate_outputs(target, "moldy*.mold"), "the stand-in mold did not link"
        if wrapped:
            assert confined(run) == {"moldy": "build script directives"}


# -- proc macros inside a confined compile ----------------------------------------------------------------------

@needs_landlock
@pytest.mark.parametrize("runs_program", [True, False])
def test_a_proc_macro_in_a_confined_compile_runs_sandboxed_and_is_refused_a_program(
        cargo: Cargo, tmp_path: Path, targets: Path, runs_program: bool) -> None:
    body = ('let o = std::process::Command::new("uname").output().expect("could not run uname");\n'
            '    format!("{:?}", o.status.success()).parse().unwrap()' if runs_program else '"true".parse().unwrap()')
    write(tmp_path, {
        "Cargo.toml": '[workspace]\nmembers = ["pm", "app"]\nresolver = "2"\n',
        "pm/Cargo.toml": '[package]\nname = "pm"\nversion = "0.1.0"\nedition = "2021"\n[lib]\nproc-macro = true\n',
        "pm/src/lib.rs": "use proc_macro::TokenStream;\n#[proc_macro]\n"
                         f"pub fn gitv(_: TokenStream) -> TokenStream {{\n    {body}\n}}\n",
        "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n'
                          '[dependencies]\npm = { path = "../pm" }\n',
        "app/build.rs": 'fn main() { println!("cargo:rustc-env=FLAVOR=x"); }\n',
        "app/src/main.rs": 'fn main() { println!("{} {}", pm::gitv!(), env!("FLAVOR")); }\n'})
    run = cargo(tmp_path, "run", "-q", wrapped=True, target_dir=targets / f"pm-exec-{runs_program}", check=False)
    if runs_program:  # the macro runs in the sandbox (its server started outside the compile's confinement)
        assert not run.ok
        assert "process-spawn denied: uname" in run.proc.stderr, run.proc.stderr[-3000:]
        assert "[permissions.macro.pm]" in run.proc.stderr
    else:
        assert run.ok, run.proc.stderr[-3000:]
        assert run.proc.stdout == "true x\n"


# -- the grants for either build-dir layout (shim.confine.rustc_grants) ---------------------------------------------

@pytest.mark.parametrize("new", [False, True], ids=["old-layout", "new-layout"])
def test_a_confined_compile_reads_its_dependencies_crate_files_and_nothing_else_of_the_build_dir(
        tmp_path: Path, new: bool) -> None:
    """The new layout names each dependency's own `out/` (`-L dependency=`, `--extern`): the compile reads
    and lists those, writes its own `out/`; no other unit, no `.d`, no fingerprint, not the build dir."""
    from shim.cargo import layout
    from shim.cargo.rustc_args import parse
    from shim.confine.rustc_grants import grants

    target = tmp_path / "target"
    profile = target / "debug"
    unit = (lambda pkg, h: profile / "build" / pkg / h / "out") if new else (lambda pkg, h: profile / "deps")
    dep, other, own = unit("dep", "1111"), unit("other", "2222"), unit("app", "3333")
    files = {dep / "libdep-1111.rlib": "", dep / "libdep-1111.rmeta": "", dep / "dep-1111.d": "# env-dep:S=v\n",
             other / "libother-2222.rlib": "", other / "other-2222.d": "# env-dep:S=v\n",
             profile / ".cargo-lock": "", target / "CACHEDIR.TAG": ""}
    if new:
        files[dep.parent / "fingerprint" / "lib-dep"] = "v"
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    own.mkdir(parents=True, exist_ok=True)
    pkg = tmp_path / "app"
    argv = ["--crate-name", "app", "--edition=2021", str(pkg / "src" / "main.rs"), "--crate-type", "bin",
            "--emit=dep-info,link", "-C", "metadata=3333", "--out-dir", str(own),
            "-C", f"incremental={profile / 'incremental'}", "-L", f"dependency={dep}",
            "--extern", f"dep={dep / 'libdep-1111.rlib'}"]
    args = parse(argv)
    assert args.out_dir is not None
    granted = grants(["rustc"], argv, args, {"PATH": os.defpath, "CARGO_MANIFEST_DIR": str(pkg)},
                     str(tmp_path / "tmp"), target=layout.build_root(args.out_dir, args.target))
    in_target = {Path(p) for p in granted.read if Path(p) == target or target in Path(p).parents}
    crates = {dep / "libdep-1111.rlib", dep / "libdep-1111.rmeta"}
    assert in_target == (crates if new else crates | {other / "libother-2222.rlib"})  # old: deps/ is shared
    assert granted.listable == [str(dep)]
    assert {Path(p) for p in granted.write if target in Path(p).parents} == {own, profile / "incremental"}
