"""shim.confine.landlock and its launcher, on the real kernel: confined children read, write and connect only where
they were allowed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from shim.confine import landlock, landlock_exec

pytestmark = pytest.mark.skipif(landlock.abi_version() == 0,
                                reason=f"Landlock unavailable: {landlock.unavailable_reason()}")

CAT = shutil.which("cat") or "/bin/cat"
BASH = shutil.which("bash") or "/bin/bash"


def confined(program: str, *args: str, read: list[str], write: list[str] = (),
             connect: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `program args` through the launcher, allowed to read its own loader files plus `read`."""
    loader = landlock.loader_files(program) or []
    argv = landlock_exec.command([program, *args], [*loader, *read], list(write), connect)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    allowed, forbidden, writable = tmp_path / "allowed", tmp_path / "forbidden", tmp_path / "writable"
    for d in (allowed, forbidden, writable):
        d.mkdir()
    (allowed / "ok.txt").write_text("allowed bytes\n")
    (forbidden / "secret.txt").write_text("secret bytes\n")
    return {"allowed": allowed, "forbidden": forbidden, "writable": writable}


def test_abi_version_is_known_and_no_reason_is_given() -> None:
    assert landlock.abi_version() >= 1
    assert landlock.unavailable_reason() == ""


def test_cat_reads_an_allowed_file(files: dict[str, Path]) -> None:
    proc = confined(CAT, str(files["allowed"] / "ok.txt"), read=[str(files["allowed"])])
    assert (proc.returncode, proc.stdout) == (0, "allowed bytes\n")


def test_cat_of_a_forbidden_file_fails_with_eacces(files: dict[str, Path]) -> None:
    secret = files["forbidden"] / "secret.txt"
    assert os.access(secret, os.R_OK)  # readable outside the sandbox
    proc = confined(CAT, str(secret), read=[str(files["allowed"])])
    assert proc.returncode != 0
    assert "Permission denied" in proc.stderr
    assert "secret" not in proc.stdout


def test_a_single_file_can_be_granted_without_its_directory(files: dict[str, Path]) -> None:
    (files["forbidden"] / "other.txt").write_text("other\n")
    ok = confined(CAT, str(files["forbidden"] / "secret.txt"), read=[str(files["forbidden"] / "secret.txt")])
    other = confined(CAT, str(files["forbidden"] / "other.txt"), read=[str(files["forbidden"] / "secret.txt")])
    assert ok.returncode == 0 and other.returncode != 0


def test_writes_only_under_the_write_set(files: dict[str, Path]) -> None:
    script = 'echo a > "$1/new.txt" && echo b > "$2/new.txt"'
    proc = confined(BASH, "-c", script, "-", str(files["writable"]), str(files["allowed"]),
                    read=[str(files["allowed"])], write=[str(files["writable"])])
    assert (files["writable"] / "new.txt").read_text() == "a\n"
    assert not (files["allowed"] / "new.txt").exists()
    # Landlock refuses it (EACCES), or first the read-only mount outside the write set (shim.confine.mountns)
    assert proc.returncode != 0 and ("Permission denied" in proc.stderr or "Read-only file system" in proc.stderr)


def test_with_an_execute_set_nothing_else_runs(files: dict[str, Path]) -> None:
    """A granted program may not run what a build script wrote: copies of cat in the write and read sets
    do not execute, the original in the execute set does."""
    for where in ("writable", "allowed"):
        shutil.copy2(CAT, files[where] / "cat")
    loader = landlock.loader_files(BASH) or []
    sets = {"read": [str(files["allowed"])], "write": [str(files["writable"])]}
    ok = files["allowed"] / "ok.txt"
    script = f'{files["writable"]}/cat {ok}; echo "w=$?"; {files["allowed"]}/cat {ok}; echo "r=$?"; {CAT} {ok}'
    argv = landlock_exec.command([BASH, "-c", script], sets["read"], sets["write"], (),
                                 [*loader, *(landlock.loader_files(CAT) or [])])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert "w=126" in proc.stdout and "r=126" in proc.stdout, proc.stdout + proc.stderr  # 126: cannot execute
    assert proc.stdout.count("allowed bytes") == 1
    unconfined_exec = landlock_exec.command([BASH, "-c", script], [*loader, *(landlock.loader_files(CAT) or []),
                                                                  *sets["read"]], sets["write"])
    proc = subprocess.run(unconfined_exec, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert "w=0" in proc.stdout and proc.stdout.count("allowed bytes") == 3, proc.stdout + proc.stderr  # the twin


def test_missing_paths_are_skipped(files: dict[str, Path]) -> None:
    proc = confined(CAT, str(files["allowed"] / "ok.txt"), read=[str(files["allowed"]), "/no/such/dir"])
    assert proc.returncode == 0


@pytest.mark.skipif(landlock.abi_version() < 4, reason="TCP rules need Landlock ABI 4")
def test_tcp_connect_is_refused_unless_its_port_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        script = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
        refused = confined(BASH, "-c", script, read=[])
        allowed = confined(BASH, "-c", script, read=[], connect=(port,))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


def test_the_launcher_fails_closed_when_it_cannot_exec(files: dict[str, Path]) -> None:
    # The program itself is not in the read set: exec is refused after the restriction, never run unconfined.
    argv = landlock_exec.command([CAT, str(files["allowed"] / "ok.txt")], [str(files["allowed"])], [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == landlock_exec.LAUNCH_FAILED
    assert proc.stderr.startswith(landlock_exec.STDERR_PREFIX)


def test_the_launcher_rejects_malformed_arguments() -> None:
    with pytest.raises(ValueError):
        landlock_exec.parse(["--read", "/x"])
    with pytest.raises(ValueError):
        landlock_exec.parse(["--bogus", "/x", "--", "cat"])
    assert landlock_exec.parse(["--read", "/a", "--write", "/b", "--connect", "80", "--", "cat", "-"]) == (
        ["/a"], ["/b"], [80], None, ["cat", "-"])
    assert landlock_exec.parse(["--exec", "/bin", "--no-exec", "--read", "/a", "--", "cat"]) == (
        ["/a"], [], [], ["/bin"], ["cat"])


def test_loader_files_lists_the_program_its_interpreter_and_libc() -> None:
    files = landlock.loader_files(CAT)
    assert files is not None
    assert os.path.realpath(CAT) in files and "/etc/ld.so.cache" in files
    assert any(os.path.basename(f).startswith("libc.so") for f in files)
    assert any("ld-linux" in os.path.basename(f) for f in files)


def test_loader_files_of_a_non_elf_file_is_none(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\ntouch ran\n")
    script.chmod(0o755)
    assert landlock.loader_files(str(script)) is None
    assert not (tmp_path / "ran").exists()


def test_confined_children_cannot_open_unix_or_udp_sockets_but_tcp_and_pipes_work(tmp_path: Path) -> None:
    """Landlock does not govern connecting to a Unix socket by path (the Docker socket) nor UDP: seccomp
    refuses creating them. The twin: a TCP socket and a socketpair still work."""
    import sys

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "agent.sock"))
    listener.listen(1)
    code = ("import socket\n"
            "try:\n    s = socket.socket(socket.AF_UNIX); s.connect(%r); print('unix: connected')\n"
            "except OSError as e:\n    print('unix:', e.errno)\n"
            "try:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM); print('udp: ok')\n"
            "except OSError as e:\n    print('udp:', e.errno)\n"
            "socket.socket(socket.AF_INET6).close(); socket.socketpair(); print('tcp and socketpair: ok')\n"
            ) % str(tmp_path / "agent.sock")
    python = os.path.realpath(sys.executable)
    stdlib = os.path.dirname(socket.__file__)
    proc = confined(python, "-I", "-S", "-c", code, read=[stdlib, str(tmp_path), os.path.dirname(python)])
    listener.close()
    assert proc.stdout.splitlines() == ["unix: 13", "udp: 13", "tcp and socketpair: ok"], proc.stdout + proc.stderr


def test_the_seccomp_filter_is_well_formed_for_each_known_architecture() -> None:
    from shim.confine import seccomp

    for machine in ("x86_64", "aarch64"):
        for udp in (False, True):
            insns = seccomp.program(machine, udp=udp)
            for i, (code, jt, jf, _k) in enumerate(insns):
                if code in (0x15, 0x35):  # jumps stay inside the program
                    assert i + 1 + max(jt, jf) < len(insns)
            assert insns[-1] == (0x06, 0, 0, 0x7FFF0000) and insns[-2] == (0x06, 0, 0, 0x00050000 | 13)
            assert insns[12][1] == (1 if udp else 0)  # a datagram socket reaches ALLOW only with routes


def test_the_launcher_sets_the_file_size_limit_before_the_program_runs(files: dict[str, Path]) -> None:
    """A hard RLIMIT_FSIZE the program and all it starts inherit: a write past it fails (EFBIG)."""
    out = files["writable"] / "big"
    script = f'ulimit -H -f; head -c 300000 /dev/zero > {out}; echo "status $?"'
    loader = landlock.loader_files(BASH) or []
    argv = landlock_exec.command([BASH, "-c", script], [*loader, "/usr/bin", "/bin", "/dev/zero"],
                                [str(files["writable"])], file_size=128 << 10)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    lines = done.stdout.split()
    assert lines[0] == "128"  # bash counts 1 KiB blocks
    assert lines[-1] != "0" and out.stat().st_size <= 128 << 10
