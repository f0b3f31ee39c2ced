"""File permission bits under the sandbox (shim/host/files.py, the facade's modes.rs, fs.rs and stat.rs):
`fs::copy` keeps the source's bits, `fs::set_permissions` sets them, only on what the run may write, and
never through `..`, a symbolic link or a hard link to a file elsewhere; setuid and friends are dropped.

Guests run under real wasmtime with the runner's preopens (tests/guests.py); the host function is also
tested alone against a temporary tree."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from shim.host import abi
from shim.host import files as host_files
from shim.host.context import RunContext
from shim.host.process import HostCallError

from conftest import FIXTURES, Cargo
from guests import (Compiler, Sandbox, cache_env, compiler, facade_rlib, package_with_files,  # noqa: F401 (fixtures)
                    sandbox, tc)


def mode_of(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- the host function alone -------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path: Path) -> tuple[host_files.Files, RunContext, Path]:
    pkg, out, tmp, outside = (tmp_path / n for n in ("pkg", "out", "tmp", "outside"))
    for d in (pkg, out, tmp, outside):
        d.mkdir()
    (outside / "victim").write_text("x")
    os.chmod(outside / "victim", 0o640)
    ctx = RunContext(crate="guest", version="0.1.0", package_dir=str(pkg), out_dir=str(out), tmp_dir=str(tmp),
                     env={}, host_env={}, rustc="rustc", sysroot="/")
    preopens = [(str(pkg), str(pkg), False), (str(pkg), ".", False), (str(out), str(out), True),
                (str(tmp), str(tmp), True)]
    return host_files.Files(ctx, preopens), ctx, tmp_path


def denied(files: host_files.Files, path: str, mode: int) -> str:
    with pytest.raises(HostCallError) as refused:
        files.chmod(path, mode)
    assert refused.value.code == abi.E_DENIED
    return refused.value.message


def test_chmod_sets_the_bits_of_a_file_in_out_dir_and_drops_setuid(tree) -> None:
    files, ctx, root = tree
    script = root / "out" / "sub" / "run.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    files.chmod(str(script), 0o4755 | 0o2000 | 0o1000)
    assert mode_of(script) == 0o755
    files.chmod(str(root / "tmp"), 0o500)  # a directory keeps u+rwx
    assert mode_of(root / "tmp") == 0o700
    assert ctx.denials == []


def test_chmod_refuses_paths_outside_the_write_set_lexically_and_through_links(tree) -> None:
    files, ctx, root = tree
    victim = root / "outside" / "victim"
    (root / "pkg" / "src.sh").write_text("x")
    assert "outside OUT_DIR" in denied(files, str(victim), 0o777)
    assert "outside OUT_DIR" in denied(files, str(root / "pkg" / "src.sh"), 0o777)  # readable, not writable
    assert "outside OUT_DIR" in denied(files, host_files.normal_path(f"{root}/out/../outside/victim"), 0o777)
    (root / "out" / "link").symlink_to(victim)
    (root / "out" / "dirlink").symlink_to(root / "outside")
    assert "symbolic link" in denied(files, str(root / "out" / "link"), 0o777)
    assert "symbolic link" in denied(files, str(root / "out" / "dirlink" / "victim"), 0o777)
    os.link(victim, root / "out" / "hard")
    assert "2 hard links" in denied(files, str(root / "out" / "hard"), 0o777)
    assert mode_of(victim) == 0o640
    assert all(d.fatal and d.capability == "filesystem-access" for d in ctx.denials) and len(ctx.denials) == 5


def test_chmod_refuses_what_is_neither_a_file_nor_a_directory(tree) -> None:
    files, _ctx, root = tree
    os.mkfifo(root / "out" / "fifo")
    assert "not a regular file" in denied(files, str(root / "out" / "fifo"), 0o777)
    with pytest.raises(HostCallError) as missing:
        files.chmod(str(root / "out" / "missing"), 0o755)
    assert missing.value.code == abi.E_NOT_FOUND


def test_file_mode_answers_inside_the_preopens_only(tree) -> None:
    files, _ctx, root = tree
    (root / "pkg" / "configure").write_text("x")
    os.chmod(root / "pkg" / "configure", 0o751)
    (root / "pkg" / "out").symlink_to(root / "outside" / "victim")
    assert files.file_mode(str(root / "pkg" / "configure"), True) == 0o751
    for path, follow in ((root / "outside" / "victim", True), (root / "pkg" / "out", True)):
        with pytest.raises(HostCallError):
            files.file_mode(str(path), follow)
    assert files.file_mode(str(root / "pkg" / "out"), False) == 0o777  # the link itself


def test_file_mode_follows_links_only_where_they_stay_below_the_preopen(tree) -> None:
    files, _ctx, root = tree
    (root / "out" / "d").mkdir()
    (root / "out" / "d" / "f").write_text("x")
    os.chmod(root / "out" / "d" / "f", 0o604)
    (root / "out" / "rel").symlink_to("d/f")
    (root / "out" / "up").symlink_to("../outside/victim")
    assert files.file_mode(str(root / "out" / "rel"), True) == 0o604
    for link in ("up", "d/../up"):
        with pytest.raises(HostCallError) as refused:
            files.file_mode(host_files.normal_path(f"{root}/out/{link}"), True)
        assert "leads out" in refused.value.message


def test_file_mode_never_answers_for_a_file_a_link_swapped_in_meanwhile_reaches(tree) -> None:
    """A granted program writing OUT_DIR while the guest asks (red team 2, issue 11): `out/real` flips between
    a directory and a link out of OUT_DIR; a check-then-stat answered with the outside file's bits."""
    import ctypes
    import threading

    files, _ctx, root = tree
    (root / "out" / "real").mkdir()
    (root / "out" / "real" / "victim").write_text("x")
    os.chmod(root / "out" / "real" / "victim", 0o600)
    (root / "out" / "swap").symlink_to(root / "outside")
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()

    def flip() -> None:
        a, b = (os.fsencode(root / "out" / n) for n in ("real", "swap"))
        while not stop.is_set():
            libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE

    flipper = threading.Thread(target=flip)
    flipper.start()
    answers: set[int | str] = set()
    try:
        for _ in range(5000):
            for follow in (True, False):
                try:
                    answers.add(files.file_mode(str(root / "out" / "real" / "victim"), follow))
                except (HostCallError, OSError):
                    answers.add("refused")
    finally:
        stop.set()
        flipper.join()
    assert 0o640 not in answers and 0o600 in answers


def test_the_longest_guest_prefix_picks_the_preopen(tmp_path: Path) -> None:
    preopens = [("/h/pkg", "/p", False), ("/h/pkg", ".", False), ("/h/out", "/p/target/out", True), ("/", "/", False)]
    assert host_files.preopen_of("/p/target/out/a/b", preopens) == (preopens[2], ["a", "b"])
    assert host_files.preopen_of("/p/x", preopens) == (preopens[0], ["x"])
    assert host_files.preopen_of("/etc/passwd", preopens) == (preopens[3], ["etc", "passwd"])
    assert host_files.preopen_of("/etc", preopens[:3]) is None


# -- guests ------------------------------------------------------------------------------------------------

MODES = r"""
use std::{env, fs};
fn main() {
    let out = env::var("OUT_DIR").unwrap();
    let show = |what: &str, r: std::io::Result<()>| println!("{}\t{:?}", what, r.map_err(|e| e.kind()));
    // copy keeps +x; set_permissions from another file's metadata
    show("copy", fs::copy("configure.sh", format!("{}/configure.sh", out)).map(drop));
    fs::write(format!("{}/gen.sh", out), "#!/bin/sh\necho generated\n").unwrap();
    let exec = fs::metadata("configure.sh").unwrap().permissions();
    show("set", fs::set_permissions(format!("{}/gen.sh", out), exec.clone()));
    println!("readonly\t{}", exec.readonly());
    show("setuid", fs::set_permissions(format!("{}/suid.sh", out), fs::metadata("suid.sh").unwrap().permissions()));
    for target in ["configure.sh", "../outside/victim", "OUT/../../outside/victim", "OUT/link", "OUT/hard"] {
        let target = target.replace("OUT", &out);
        show(&target.replace(&out, "OUT"), fs::set_permissions(&target, exec.clone()));
    }
}
"""


def test_copy_and_set_permissions_keep_and_set_exec_bits_only_on_the_run_s_own_files(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = package_with_files(sandbox)
    pkg, out = Path(ctx.package_dir), Path(ctx.out_dir)
    (pkg / "configure.sh").write_text("#!/bin/sh\necho configured\n")
    os.chmod(pkg / "configure.sh", 0o755)
    (pkg / "suid.sh").write_text("#!/bin/sh\n")
    os.chmod(pkg / "suid.sh", 0o4755)
    (out / "suid.sh").write_text("#!/bin/sh\n")
    outside = pkg.parent / "outside"
    outside.mkdir()
    (outside / "victim").write_text("x")
    os.chmod(outside / "victim", 0o600)
    (out / "link").symlink_to(outside / "victim")
    os.link(outside / "victim", out / "hard")
    ran = sandbox.run(compiler.wasm("modes", MODES), ctx)
    assert ran.code == 0, ran.stderr
    results = dict(line.split("\t") for line in ran.stdout.splitlines())
    assert results.pop("copy") == results.pop("set") == results.pop("setuid") == "Ok(())"
    assert results.pop("readonly") == "false"
    assert set(results.values()) == {"Err(PermissionDenied)"}, results
    assert mode_of(out / "configure.sh") == mode_of(out / "gen.sh") == 0o755
    assert mode_of(out / "suid.sh") == 0o755  # setuid dropped
    assert mode_of(outside / "victim") == 0o600 and mode_of(pkg / "configure.sh") == 0o755
    refused = sorted(d.target for d in ctx.denials)
    assert len(refused) == 5 and all(d.fatal for d in ctx.denials)


# -- cargo through the wrapper (fixtures/file-modes; the layout cannot matter: selected_cargo) -------------

@pytest.fixture(scope="module")
def modes_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp("modes") / "file-modes"
    shutil.copytree(FIXTURES / "file-modes", package)
    os.chmod(package / "scripts" / "configure.sh", 0o755)  # whatever the checkout did
    return package


@pytest.mark.integration
def test_a_build_script_s_copied_and_generated_scripts_run_natively_after_an_empty_policy_build(
        selected_cargo: Cargo, modes_package: Path) -> None:
    target = modes_package.parent / "target-benign"
    selected_cargo(modes_package, "build", "--locked", wrapped=True, target_dir=target)
    out = Path(subprocess.run([str(target / "debug" / "file-modes")], capture_output=True, text=True,
                              check=True).stdout.strip())
    assert mode_of(out / "configure.sh") == mode_of(out / "generated.sh") == 0o755
    ran = [subprocess.run([str(out / name)], capture_output=True, text=True, check=True).stdout
           for name in ("configure.sh", "generated.sh")]
    assert ran == ["configured\n", "generated\n"]


@pytest.mark.integration
def test_a_build_script_that_chmods_its_package_directly_or_through_dotdot_fails_and_changes_nothing(
        selected_cargo: Cargo, modes_package: Path) -> None:
    before = mode_of(modes_package / "build.rs")
    run = selected_cargo(modes_package, "build", "--locked", "--features", "hostile", wrapped=True,
                         target_dir=modes_package.parent / "target-hostile", check=False)
    assert not run.ok
    assert run.proc.stderr.count("cargo:warning=refused: permission denied") == 2, run.proc.stderr[-3000:]
    assert "changed the mode" not in run.proc.stderr
    assert "filesystem-access denied: chmod" in run.proc.stderr
    assert mode_of(modes_package / "build.rs") == before
