"""The filesystem a run is shown (shim.confine.fsview), what it may leave behind (shim.build.run.leftovers) and the
metadata its confined children may change (shim.confine.mountns through shim.confine.landlock_exec), on real files."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shim.build import run as runner
from shim.confine import fsview, landlock, landlock_exec
from shim.host.context import RunContext
from shim.sandbox import engine


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


@pytest.mark.parametrize("unit", ["build/p-1", "build/p/0a1b2c3d"], ids=["old-layout", "new-layout"])
def test_a_build_dir_cargo_did_not_tag_is_hidden_by_its_lock(tmp_path: Path, unit: str) -> None:
    """An existing `target/` (no CACHEDIR.TAG) before cratecage tagged its own state: the profile's lock
    that cargo holds while it builds marks it, in either layout."""
    pkg = tmp_path / "pkg"
    out = pkg / "target" / "debug" / unit / "out"
    out.mkdir(parents=True)
    (pkg / "target" / "debug" / ".cargo-lock").touch()
    ctx = RunContext(crate="p", version="1", package_dir=str(pkg), out_dir=str(out), tmp_dir="", env={},
                     host_env={"TARGET": "x86_64-unknown-linux-gnu"}, rustc="rustc", sysroot="/")
    hidden = fsview.hidden_dirs(ctx)
    assert hidden[0] == str(pkg / "target")  # (and its profile dir, which cargo_dirs finds by the lock)
    assert all(h == hidden[0] or h.startswith(hidden[0] + os.sep) for h in hidden), hidden
    (pkg / "target" / "debug" / ".cargo-lock").unlink()
    fsview.cargo_dirs.cache_clear()  # (once per root and process)
    assert fsview.hidden_dirs(ctx) == []  # not a cargo build at all: nothing to hide, nothing guessed


def test_landlock_rules_cover_the_package_but_its_target_dir(package: Path) -> None:
    rules = fsview.landlock_paths(str(package), [str(package / "target")])
    assert sorted(rules) == [str(package / "Cargo.toml"), str(package / "src")]
    assert fsview.landlock_paths(str(package / "src"), [str(package / "target")]) == [str(package / "src")]


def test_a_package_holding_the_target_dir_is_preopened_through_a_view_without_it(package: Path,
                                                                                  tmp_path: Path) -> None:
    ctx = context(package, tmp_path)
    table = engine.preopen_table(ctx, [])
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
    assert engine.preopen_table(ctx, [])[:2] == [(str(pkg), str(pkg), False), (str(pkg), ".", False)]


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
    found = {os.path.basename(p): what for p, what in engine.leftovers(str(root))}
    sock.close()
    assert found == expected


def test_check_leftovers_removes_them_with_a_fatal_denial_each_and_spares_the_owner_s(tmp_path: Path) -> None:
    from shim.policy.model import Grant

    out, tmp, writable = tmp_path / "out", tmp_path / "tmp", tmp_path / "writable"
    for d in (out, tmp, writable):
        d.mkdir()
    (writable / "owners-link").symlink_to("/etc/hostname")
    ctx = RunContext(crate="p", version="1", package_dir=str(tmp_path), out_dir=str(out), tmp_dir=str(tmp), env={},
                     host_env={}, rustc="rustc", sysroot="/")
    ctx.grant = Grant(kind="build", crate="p", version="1",
                      permits={"filesystem-access.writable": (str(writable),)})
    before = engine.leftovers_before(ctx)
    os.mkfifo(out / "pipe")
    os.mkfifo(tmp / "pipe")
    (writable / "leak").symlink_to("/etc/hostname")
    engine.check_leftovers(ctx, before)
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


def metadata_files(tmp_path: Path) -> tuple[Path, Path]:
    """A file outside the write set with known mode and times, and a writable dir holding `mine`."""
    outside, writable = tmp_path / "outside.txt", tmp_path / "w"
    writable.mkdir()
    (writable / "mine").write_text("x")
    outside.write_text("x")
    os.chmod(outside, 0o644)
    os.utime(outside, (1_000_000, 1_000_000))
    return outside, writable


@pytest.mark.skipif(landlock.abi_version() < 1, reason="the launcher fails closed without Landlock")
def test_a_confined_child_changes_no_metadata_outside_its_write_set(tmp_path: Path) -> None:
    outside, writable = metadata_files(tmp_path)
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


# -- every cargo build directory under a readable root (fsview.cargo_dirs) ---------------------------------

TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cargo.\n"


def make_tree(root: Path, layout: dict[str, bytes | None]) -> None:
    """`layout`: relative path -> file content, or None for a directory."""
    for rel, content in layout.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


# (what, layout inside the package, the directory that must be found or None)
CARGO_DIRS = [
    ("a second target dir", {"target-ci/CACHEDIR.TAG": TAG, "target-ci/debug/deps/x.d": b"# env-dep:S=v\n"},
     "target-ci"),
    ("a hidden one", {".target/CACHEDIR.TAG": TAG}, ".target"),
    ("two levels down", {"build/cargo-target/CACHEDIR.TAG": TAG}, "build/cargo-target"),
    ("three levels down", {"ci/cache/cargo/CACHEDIR.TAG": TAG}, "ci/cache/cargo"),
    ("a build-dir of the new layout", {"bd/.rustc_info.json": b"{}", "bd/debug/build/p/0a1b/out/x": b""}, "bd"),
    ("a profile dir cached alone", {"cache/debug/.fingerprint/p-1/x": b"v", "cache/debug/deps/x.d": b""},
     "cache/debug"),
    ("a profile dir with its lock", {"old/release/.cargo-lock": b"", "old/release/deps/x.d": b""}, "old/release"),
    ("a new layout's build-dir profile cached alone",
     {"bd-cache/debug/.cargo-build-lock": b"", "bd-cache/debug/build/p/0a1b/out/p-0a1b.d": b"# env-dep:S=v\n"},
     "bd-cache/debug"),
    ("deps without any marker (the twin)", {"notes/deps/x.d": b"# env-dep:S=v\n"}, None),
    ("a CACHEDIR.TAG of no signature", {"data/CACHEDIR.TAG": b"not a tag\n"}, None),
    ("a CACHEDIR.TAG that is a directory", {"odd/CACHEDIR.TAG/x": b""}, None),
]


@pytest.mark.parametrize("what,layout,found", CARGO_DIRS, ids=[c[0] for c in CARGO_DIRS])
def test_cargo_dirs_finds_every_build_directory_and_only_those(tmp_path: Path, what: str,
                                                               layout: dict[str, bytes | None],
                                                               found: str | None) -> None:
    pkg = tmp_path / "pkg"
    make_tree(pkg, {"src/lib.rs": b"", **layout})
    assert fsview.cargo_dirs(str(pkg)) == ((str(pkg / found),) if found else ())


def test_cargo_dirs_follows_no_symlink_and_stops_at_its_depth(tmp_path: Path) -> None:
    """The bounds of the search (README, Limits): a link is not searched, four levels down is not found."""
    elsewhere, pkg = tmp_path / "elsewhere", tmp_path / "pkg"
    make_tree(elsewhere, {"t/CACHEDIR.TAG": TAG})
    make_tree(pkg, {"a/b/c/d/CACHEDIR.TAG": TAG})
    (pkg / "link").symlink_to(elsewhere)
    assert fsview.cargo_dirs(str(pkg)) == ()
    assert fsview.SEARCH_DEPTH == 3


def test_cargo_dirs_checks_the_children_of_a_wide_directory_without_listing_them(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    pkg = tmp_path / "pkg"
    for i in range(fsview.WIDE_DIR + 50):
        (pkg / "node_modules" / f"m{i}" / "lib" / "x").mkdir(parents=True)
    make_tree(pkg, {"node_modules/m7/CACHEDIR.TAG": TAG, "ci/cache/t/CACHEDIR.TAG": TAG})
    listed: list[str] = []
    real = os.scandir
    monkeypatch.setattr(fsview.os, "scandir", lambda p: (listed.append(p), real(p))[1])
    found = fsview.cargo_dirs(str(pkg))
    assert set(found) == {str(pkg / "node_modules" / "m7"), str(pkg / "ci" / "cache" / "t")}
    assert len(listed) < 10  # the package, node_modules, ci, ci/cache, ci/cache/t: not the fan-out


def test_cargo_dirs_lists_at_most_search_dirs_directories(tmp_path: Path, monkeypatch) -> None:
    import time

    for i in range(300):
        for j in range(20):
            (tmp_path / f"d{i}" / f"e{j}").mkdir(parents=True)
    listed: list[str] = []
    real = os.scandir
    monkeypatch.setattr(fsview.os, "scandir", lambda p: (listed.append(p), real(p))[1])
    started = time.monotonic()
    fsview.cargo_dirs(str(tmp_path))
    assert len(listed) == fsview.SEARCH_DIRS and time.monotonic() - started < 5


def test_hidden_dirs_holds_the_stale_target_dirs_of_the_package_and_of_readable_grants(package: Path,
                                                                                        tmp_path: Path) -> None:
    from shim.policy.model import Grant

    granted = tmp_path / "granted"
    make_tree(package, {"target-ci/CACHEDIR.TAG": TAG})
    make_tree(granted, {"sub/.target/CACHEDIR.TAG": TAG, "data.txt": b"x"})
    ctx = context(package, tmp_path)
    ctx.grant = Grant(kind="build", crate="p", version="1", permits={"filesystem-access.paths": (str(granted),)})
    assert sorted(fsview.hidden_dirs(ctx)) == sorted([str(package / "target"), str(package / "target-ci"),
                                                      str(granted / "sub" / ".target")])


def test_landlock_rules_of_a_split_root_leave_symlinks_out(package: Path, tmp_path: Path) -> None:
    (package / "to-target").symlink_to(package / "target")
    (package / "to-home").symlink_to(tmp_path)
    rules = fsview.landlock_paths(str(package), [str(package / "target")])
    assert sorted(rules) == [str(package / "Cargo.toml"), str(package / "src")]


@pytest.mark.skipif(landlock.abi_version() < 1, reason="the launcher fails closed without Landlock")
def test_a_confined_cat_reads_the_package_but_no_stale_target_dir(package: Path, tmp_path: Path) -> None:
    make_tree(package, {"target-ci/CACHEDIR.TAG": TAG, "target-ci/debug/deps/p.d": b"# env-dep:S=secret\n",
                        "notes/deps/p.d": b"# env-dep:S=harmless\n"})
    ctx = context(package, tmp_path)
    cat = "/bin/cat"
    read = [*fsview.landlock_paths(str(package), fsview.hidden_dirs(ctx)), *(landlock.loader_files(cat) or [])]
    for rel, ok in (("target-ci/debug/deps/p.d", False), ("notes/deps/p.d", True), ("target/debug/secret.d", False)):
        proc = subprocess.run(landlock_exec.command([cat, str(package / rel)], [*read, cat], []),
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode == 0) == ok and ("secret" in proc.stdout) is False, (rel, proc.stderr)


# -- metadata where no mount namespace can be made (shim.confine.seccomp.refuse_metadata) --------------------------

def test_the_metadata_filter_is_well_formed_for_each_known_architecture() -> None:
    from shim.confine import seccomp

    for machine in ("x86_64", "aarch64"):
        insns = seccomp.metadata_program(machine)
        calls = seccomp.METADATA_SYSCALLS[machine]
        deny = len(insns) - 1
        assert insns[deny] == (0x06, 0, 0, 0x00050000 | 1) and insns[deny - 1] == (0x06, 0, 0, 0x7FFF0000)
        compared = {k for code, _jt, _jf, k in insns[5:deny - 1] if code == 0x15}
        assert compared == set(calls.values())
        for i, (code, jt, _jf, _k) in enumerate(insns[5:deny - 1], start=5):
            assert i + 1 + jt == deny  # every comparison lands on DENY when it matches
        assert {"fchmodat", "fchmodat2", "fchownat", "utimensat", "fchmod", "fchown", "setxattr", "fsetxattr",
                "lsetxattr", "removexattr", "fremovexattr", "lremovexattr"} <= set(calls)
    assert {"chmod", "chown", "lchown", "utime", "utimes", "futimesat"} <= set(seccomp.METADATA_SYSCALLS["x86_64"])


METADATA_SCRIPT = """
import os, sys
def fd(p):
    return os.open(p, os.O_RDONLY)
for what, call in (("chmod", lambda p: os.chmod(p, 0o600)), ("fchmod", lambda p: os.fchmod(fd(p), 0o600)),
                   ("utime", lambda p: os.utime(p, (5, 5))), ("futimens", lambda p: os.utime(fd(p), (5, 5))),
                   ("chown", lambda p: os.chown(p, os.getuid(), os.getgid())),
                   ("lchown", lambda p: os.lchown(p, os.getuid(), os.getgid())),
                   ("fchown", lambda p: os.fchown(fd(p), os.getuid(), os.getgid())),
                   ("xattr", lambda p: os.setxattr(p, "user.cratecage", b"1")),
                   ("fxattr", lambda p: os.setxattr(fd(p), "user.cratecage", b"1")),
                   ("rmxattr", lambda p: os.removexattr(p, "user.cratecage"))):
    for path in sys.argv[1:]:
        try:
            call(path); print(what, os.path.basename(path), "ok")
        except OSError as err:
            print(what, os.path.basename(path), err.errno)
with open(os.path.join(os.path.dirname(sys.argv[2]), "new"), "w") as fh:
    fh.write("created\\n")
print("create ok")
"""


@pytest.mark.skipif(landlock.abi_version() < 1, reason="the launcher fails closed without Landlock")
def test_without_a_mount_namespace_every_metadata_call_fails_with_eperm(tmp_path: Path, monkeypatch) -> None:
    import errno

    monkeypatch.setenv(landlock_exec.METADATA_GUARD_ENV, "seccomp")
    outside, writable = metadata_files(tmp_path)
    proc = confined(METADATA_SCRIPT, str(outside), str(writable / "mine"), write=[str(writable)])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "create ok" and (writable / "new").read_text() == "created\n"
    assert sorted(set(lines[:-1])) == sorted({f"{what} {name} {errno.EPERM}" for name in ("outside.txt", "mine")
                                              for what in ("chmod", "fchmod", "utime", "futimens", "chown",
                                                           "lchown", "fchown", "xattr", "fxattr", "rmxattr")})
    st = outside.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_mtime == 1_000_000


def test_doctor_names_the_metadata_guard_in_force(monkeypatch) -> None:
    monkeypatch.setenv(landlock_exec.METADATA_GUARD_ENV, "seccomp")
    assert landlock_exec.describe_guard().startswith("seccomp filter (CRATECAGE_METADATA_GUARD=seccomp): ")
    monkeypatch.delenv(landlock_exec.METADATA_GUARD_ENV)
    assert landlock_exec.describe_guard().split(" ", 1)[0] in ("private", "seccomp")


def test_the_launcher_refuses_an_unknown_metadata_guard() -> None:
    with pytest.raises(ValueError):
        landlock_exec.parse(["--metadata", "none", "--", "cat"])
    assert landlock_exec.forced_guard(["--read", "/", "--metadata", "seccomp", "--", "x", "--metadata", "y"]) \
        == "seccomp"


def test_the_launcher_falls_back_to_seccomp_when_no_namespace_can_be_made(monkeypatch) -> None:
    from shim.confine import mountns

    def unavailable(write):  # type: ignore[no-untyped-def]
        raise mountns.Unavailable(1, "no mount namespace: unshare: Operation not permitted")

    monkeypatch.setattr(mountns, "read_only_outside", unavailable)
    assert landlock_exec.metadata_guard(["/tmp"]) == "seccomp"
    assert landlock_exec.metadata_guard(["/tmp"], forced="seccomp") == "seccomp"
