"""The filesystem a run is shown (shim.fsview), what it may leave behind (shim.runner.leftovers) and the
metadata its confined children may change (shim.mountns through shim.landlock_exec), on real files."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shim import fsview, landlock, landlock_exec, runner
from shim.runctx import RunContext


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A single-package project with its target dir (and an OUT_DIR) inside it."""
    pkg = tmp_path / "pkg"
    (pkg / "src").mkdir(parents=True)
    (pkg / "src" / "lib.rs").write_text("// lib\n")
    (pkg / "Cargo.toml").write_text("[package]\n")
    out = pkg / "target" / "debug" / "build" / "p-1" / "out"
    out.mkdir(parents=True)
    (pkg / "target" / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    (pkg / "target" / "debug" / "secret.d").write_text("# env-dep:SECRET=value\n")
    return pkg


def context(pkg: Path, tmp_path: Path) -> RunContext:
    out = pkg / "target" / "debug" / "build" / "p-1" / "out"
    (tmp_path / "host").mkdir(exist_ok=True)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    ctx = RunContext(crate="p", version="1", package_dir=str(pkg), out_dir=str(out), tmp_dir=str(tmp_path / "tmp"),
                     env={}, host_env={}, rustc="rustc", sysroot="/")
    ctx.host_dir = str(tmp_path / "host")
    return ctx


def test_the_target_dir_is_the_nearest_ancestor_of_out_dir_with_cachedir_tag(package: Path, tmp_path: Path) -> None:
    ctx = context(package, tmp_path)
    assert fsview.hidden_dirs(ctx) == [str(package / "target")]
    assert fsview.target_dir_of(str(tmp_path / "elsewhere" / "out")) is None


def test_landlock_rules_cover_the_package_but_its_target_dir(package: Path) -> None:
    rules = fsview.landlock_paths(str(package), [str(package / "target")])
    assert sorted(rules) == [str(package / "Cargo.toml"), str(package / "src")]
    assert fsview.landlock_paths(str(package / "src"), [str(package / "target")]) == [str(package / "src")]


def test_a_package_holding_the_target_dir_is_preopened_through_a_view_without_it(package: Path,
                                                                                  tmp_path: Path) -> None:
    ctx = context(package, tmp_path)
    table = runner.preopen_table(ctx, [])
    view, guest, writable = table[0]
    assert guest == str(package) and table[1] == (view, ".", False) and not writable
    assert sorted(os.listdir(view)) == ["Cargo.toml", "src"]  # no target/
    assert os.path.commonpath([view, ctx.host_dir]) == ctx.host_dir  # host-only, never the guest's temp dir
    assert (str(package / "src"), str(package / "src"), False) in table
    assert (ctx.out_dir, ctx.out_dir, True) in table
    assert not any(g.startswith(str(package / "target") + os.sep) and g != ctx.out_dir for _h, g, _w in table)


def test_a_package_without_the_target_dir_is_preopened_as_it_is(tmp_path: Path) -> None:
    pkg = tmp_path / "ws" / "member"
    pkg.mkdir(parents=True)
    ctx = RunContext(crate="p", version="1", package_dir=str(pkg), out_dir=str(tmp_path / "ws" / "target" / "o"),
                     tmp_dir=str(tmp_path), env={}, host_env={}, rustc="rustc", sysroot="/")
    assert runner.preopen_table(ctx, [])[:2] == [(str(pkg), str(pkg), False), (str(pkg), ".", False)]


def test_granted_files_are_views_outside_the_temp_dir_and_read_only_ones_never_writable(tmp_path: Path) -> None:
    granted = tmp_path / "granted"
    granted.mkdir()
    ro, rw = granted / "ro.conf", granted / "rw.db"
    ro.write_text("ro\n")
    rw.write_text("rw\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make = lambda prefix: __import__("tempfile").mkdtemp(prefix=prefix, dir=scratch)  # noqa: E731
    [(view, parent, writable)] = fsview.file_views([(str(ro), False)], make)
    assert parent == str(granted) and not writable and os.listdir(view) == ["ro.conf"]
    [(view, parent, writable)] = fsview.file_views([(str(ro), False), (str(rw), True)], make)
    assert writable
    (Path(view) / "rw.db").write_text("changed\n")  # a writable grant: the write reaches the host file
    assert rw.read_text() == "changed\n"
    os.chmod(Path(view) / "ro.conf", 0o644)
    (Path(view) / "ro.conf").write_text("pwned\n")  # in a writable view a read-only file is a copy
    assert ro.read_text() == "ro\n"


def test_leftovers_are_special_files_and_links_leading_out(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    (root / "file").write_text("x")
    (root / "inside").symlink_to("file")
    (root / "sub" / "up").symlink_to("../file")
    (root / "leak").symlink_to(tmp_path)
    (root / "climb").symlink_to("../../..")
    os.mkfifo(root / "sub" / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    expected = {"leak": "symbolic link to " + str(tmp_path), "climb": "symbolic link to ../../..",
                "fifo": "FIFO", "sock": "socket"}
    if os.geteuid() == 0:  # only root can make a device node: then it must be found too
        os.mknod(root / "null2", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        expected["null2"] = "character device"
    found = {os.path.basename(p): what for p, what in runner.leftovers(str(root))}
    sock.close()
    assert found == expected


def test_check_leftovers_removes_them_with_a_fatal_denial_each_and_spares_the_owner_s(tmp_path: Path) -> None:
    from policy.model import Grant

    out, tmp, writable = tmp_path / "out", tmp_path / "tmp", tmp_path / "writable"
    for d in (out, tmp, writable):
        d.mkdir()
    (writable / "owners-link").symlink_to("/etc/hostname")
    ctx = RunContext(crate="p", version="1", package_dir=str(tmp_path), out_dir=str(out), tmp_dir=str(tmp), env={},
                     host_env={}, rustc="rustc", sysroot="/")
    ctx.grant = Grant(kind="build", crate="p", version="1",
                      permits={"filesystem-access.writable": (str(writable),)})
    before = runner.leftovers_before(ctx)
    os.mkfifo(out / "pipe")
    os.mkfifo(tmp / "pipe")
    (writable / "leak").symlink_to("/etc/hostname")
    runner.check_leftovers(ctx, before)
    assert not (out / "pipe").exists() and not (tmp / "pipe").exists() and not (writable / "leak").is_symlink()
    assert (writable / "owners-link").is_symlink()
    reasons = sorted(d.reason for d in ctx.denials)
    assert all(d.fatal and d.capability == "filesystem-access" for d in ctx.denials)
    assert reasons[0] == "a FIFO in OUT_DIR" and reasons[1] == "a FIFO in the temp dir"
    assert reasons[2].startswith(f"symbolic link in the writable grant {writable} points outside it")


def confined(script: str, *args: str, write: list[str]) -> subprocess.CompletedProcess[str]:
    argv = landlock_exec.command([sys.executable, "-I", "-S", "-c", script, *args],
                                 ["/"], write)  # reads everything: only metadata is under test
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(landlock.abi_version() < 1, reason="the launcher fails closed without Landlock")
def test_a_confined_child_changes_no_metadata_outside_its_write_set(tmp_path: Path) -> None:
    outside, writable = tmp_path / "outside.txt", tmp_path / "w"
    writable.mkdir()
    (writable / "mine").write_text("x")
    outside.write_text("x")
    os.chmod(outside, 0o644)
    os.utime(outside, (1_000_000, 1_000_000))
    script = """
import os, sys
for what, call in (("chmod", lambda p: os.chmod(p, 0o600)), ("utime", lambda p: os.utime(p, (5, 5))),
                   ("chown", lambda p: os.chown(p, os.getuid(), os.getgid())),
                   ("xattr", lambda p: os.setxattr(p, "user.cratecage", b"1"))):
    for path in sys.argv[1:]:
        try:
            call(path); print(what, os.path.basename(path), "ok")
        except OSError as err:
            print(what, os.path.basename(path), err.errno)
"""
    proc = confined(script, str(outside), str(writable / "mine"), write=[str(writable)])
    assert proc.returncode == 0, proc.stderr
    lines = set(proc.stdout.splitlines())
    import errno
    for what in ("chmod", "utime", "chown"):
        assert f"{what} mine ok" in lines, proc.stdout
        assert f"{what} outside.txt {errno.EROFS}" in lines, proc.stdout
    assert not any(line.startswith("xattr outside.txt ok") for line in lines)
    st = outside.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_mtime == 1_000_000
    assert stat.S_IMODE((writable / "mine").stat().st_mode) == 0o600
