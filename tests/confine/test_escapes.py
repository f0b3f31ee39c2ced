"""What a confined child may no longer undo or reach (red team round 4, issue 9 class D): the capability drop
(shim.confine.caps), the host-call filter (shim.confine.seccomp.REFUSED), the IPC/UTS/network namespaces (shim.confine.hostns) and
/dev/null kept off the writable bind mounts (shim.confine.mountns), through the launcher (shim.confine.landlock_exec) and the
in-process confined compile (shim.intercept.confined).

fixtures/hostile-spawn/native/escapes.c, compiled here, tries each escape of fixtures/red4 and prints one
line per call. Nothing here changes host state even if a fix fails: the victim file is under the test's tmp
dir, the host name, lo's flags, the clock and /dev/null's mode and times are set to their current values,
and SysV objects are looked up and removed by the test's own key.
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.confine import caps, landlock, landlock_exec, seccomp

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "fixtures" / "hostile-spawn" / "native" / "escapes.c"

pytestmark = pytest.mark.skipif(landlock.abi_version() == 0 or platform.machine().lower() not in
                                ("x86_64", "amd64", "aarch64", "arm64"), reason="needs Landlock and a known arch")


@pytest.fixture(scope="module")
def escapes(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("escapes") / "escapes"
    subprocess.run(["cc", "-pthread", "-o", str(out), str(SOURCE)], check=True)
    return str(out)


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    writable, outside = tmp_path / "writable", tmp_path / "outside"
    writable.mkdir()
    outside.mkdir()
    (outside / "victim").write_text("victim\n")
    (outside / "victim").chmod(0o600)
    (writable / "owned").write_text("owned\n")
    return {"writable": writable, "victim": outside / "victim", "owned": writable / "owned"}


def launch(escapes: str, dirs: dict[str, Path], *args: str, connect: tuple[int, ...] = ()) -> dict[str, str]:
    """Run the helper under the launcher as a granted program is run; its lines as {call: result}."""
    read = [*(landlock.loader_files(escapes) or []), escapes, "/proc"]
    argv = landlock_exec.command([escapes, *args], read, [str(dirs["writable"]), "/dev/null"], connect)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.split(":", 1) for line in proc.stdout.splitlines()) | {"": proc.stdout}


def results(out: dict[str, str]) -> dict[str, str]:
    return {k: v.strip() for k, v in out.items() if k}


def host_state(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns


@dataclass(frozen=True)
class Escape:
    mode: str
    expect: dict[str, str]  # call -> result ("ok" for a harmless twin)
    victim: bool = False    # the helper's last argument is the victim file


ESCAPES = [
    Escape("setattr", {"mount_setattr": "EPERM", "chmod victim": "EROFS", "utimensat victim": "EROFS"}, True),
    Escape("tree", {"open_tree": "EPERM", "mount": "EPERM"}, True),
    Escape("devnull", {"chmod /dev/null": "EROFS", "utimensat /dev/null": "EROFS", "write /dev/null": "ok"}),
    Escape("host", {"sethostname": "EPERM", "SIOCSIFFLAGS lo": "EPERM", "clock_settime": "EPERM",
                    "socket tcp": "ok", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"}),
    Escape("uring", {"io_uring_setup": "ENOSYS"}),
    Escape("calls", {"memfd_create": "ENOSYS", "fallocate": "EOPNOTSUPP", "posix_fallocate": "ok",
                     "unshare user": "EPERM", "unshare ipc": "EPERM", "clone newuser": "EPERM", "clone": "ok",
                     "fork": "ok", "pthread_create": "ok", "keyctl": "ENOSYS", "bpf": "EPERM",
                     "perf_event_open": "EPERM"}),
]


@pytest.mark.parametrize("escape", ESCAPES, ids=[e.mode for e in ESCAPES])
def test_a_confined_program_cannot_undo_its_confinement_nor_change_the_host(escapes: str, dirs: dict[str, Path],
                                                                             escape: Escape) -> None:
    args = [str(dirs["victim"])] if escape.victim else [str(dirs["writable"] / "f")] if escape.mode == "calls" \
        else []
    victim, devnull, hostname = host_state(dirs["victim"]), host_state(Path("/dev/null")), socket.gethostname()
    out = launch(escapes, dirs, escape.mode, *args)
    assert {k: v for k, v in results(out).items() if k in escape.expect} == escape.expect, out[""]
    assert host_state(dirs["victim"]) == victim and host_state(Path("/dev/null")) == devnull
    assert socket.gethostname() == hostname


def test_the_twin_chmod_inside_the_write_set_still_works(escapes: str, dirs: dict[str, Path]) -> None:
    assert results(launch(escapes, dirs, "owned", str(dirs["owned"]))) == {"chmod owned": "ok"}
    assert dirs["owned"].stat().st_mode & 0o777 == 0o640


def test_sysv_objects_stay_in_the_childs_ipc_namespace(escapes: str, dirs: dict[str, Path]) -> None:
    """shmget and msgget work inside (the twin), and nothing with the key is left on the host after."""
    libc = ctypes.CDLL(None, use_errno=True)
    key = random.randrange(1 << 24, 1 << 30)
    try:
        assert results(launch(escapes, dirs, "sysv", str(key))) == {"shmget": "ok", "msgget": "ok"}
        assert libc.shmget(key, 0, 0) == -1 and ctypes.get_errno() == 2  # ENOENT
        assert libc.msgget(key, 0) == -1 and ctypes.get_errno() == 2
    finally:  # a failed fix must not leave them behind either
        shm, msg = libc.shmget(key, 0, 0), libc.msgget(key, 0)
        if shm >= 0:
            libc.shmctl(shm, 0, None)  # IPC_RMID
        if msg >= 0:
            libc.msgctl(msg, 0, None)


def test_the_network_namespace_is_private_only_without_routes(escapes: str, dirs: dict[str, Path]) -> None:
    host = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("ipc", "uts", "net", "mnt", "pid")}
    for connect, same_net in (((), False), ((443,), True)):
        inside = [line for line in launch(escapes, dirs, "ns", connect=connect)[""].splitlines()]
        seen = {line.split(":", 1)[0]: line for line in inside}
        assert seen["ipc"] != host["ipc"] and seen["uts"] != host["uts"] and seen["mnt"] != host["mnt"]
        assert (seen["net"] == host["net"]) == same_net, (connect, inside)


# -- the filter table (shim.confine.seccomp.REFUSED), on a classic-BPF interpreter ----------------------------------

def run_bpf(insns: list[tuple[int, int, int, int]], arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """What `insns` returns for seccomp_data {nr, arch, ip 0, args}: the few opcodes our filters use."""
    words = [nr, arch, 0, 0] + [w for a in (list(args) + [0] * 6)[:6] for w in (a & 0xFFFFFFFF, a >> 32)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = words[k // 4]
        elif code == 0x54:
            acc &= k
        elif code == 0x06:
            return k
        elif code in (0x15, 0x35, 0x45):
            hit = acc == k if code == 0x15 else acc >= k if code == 0x35 else bool(acc & k)
            pc += jt if hit else jf
        else:
            raise AssertionError(f"unknown opcode {code:#x} at {pc}")
        pc += 1


ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
ALLOW, ERRNO = 0x7FFF0000, 0x00050000


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_refused_call_returns_its_errno_and_the_rest_pass(machine: str) -> None:
    insns = seccomp.host_calls_program(machine)
    numbers = seccomp.REFUSED_SYSCALLS[machine]
    assert set(numbers) == set(seccomp.REFUSED) | {"clone"}
    for name, (errno, _why) in seccomp.REFUSED.items():
        assert run_bpf(insns, ARCH[machine], numbers[name]) == ERRNO | errno, name
    for nr in range(0, 470):  # everything else passes (read, write, openat, socket, ...)
        if nr not in numbers.values():
            assert run_bpf(insns, ARCH[machine], nr) == ALLOW, nr
    assert run_bpf(insns, ARCH[machine] ^ 1, 0) == 0x80000000  # another ABI: killed


@pytest.mark.parametrize("flag", sorted(seccomp.CLONE_NEW_FLAGS))
def test_clone_with_a_new_namespace_flag_is_refused_and_without_passes(flag: str) -> None:
    for machine in ("x86_64", "aarch64"):
        insns, nr = seccomp.host_calls_program(machine), seccomp.REFUSED_SYSCALLS[machine]["clone"]
        sigchld_thread = 0x11 | 0x00010000 | 0x00000100  # SIGCHLD, CLONE_THREAD, CLONE_VM
        assert run_bpf(insns, ARCH[machine], nr, (sigchld_thread,)) == ALLOW
        assert run_bpf(insns, ARCH[machine], nr, (sigchld_thread | seccomp.CLONE_NEW_FLAGS[flag],)) == ERRNO | 1


def test_the_refused_numbers_match_this_machines_headers() -> None:
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if platform.machine() != "x86_64" or not header.is_file():
        pytest.skip("x86_64 headers only")
    defined = {}
    for line in header.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define" and parts[1].startswith("__NR_"):
            defined[parts[1][5:]] = int(parts[2])
    for name, nr in seccomp.REFUSED_SYSCALLS["x86_64"].items():
        assert defined.get(name, nr) == nr, name


# -- the in-process confined compile (shim.intercept.confined) ------------------------------------------------

def test_the_confined_compiles_child_holds_no_capability_and_gets_the_filter(escapes: str, tmp_path: Path,
                                                                           capfd: pytest.CaptureFixture) -> None:
    from shim.confine.rustc_grants import Grants
    from shim.intercept import confined as confined_compile

    read = [*(landlock.loader_files(escapes) or []), escapes, "/proc"]
    allowed = Grants(execute=[escapes, *read], read=read, write=[str(tmp_path), "/dev/null"])
    status, _seen = confined_compile._spawn_and_wait([escapes, "host"], {}, allowed, "x")
    status2, _ = confined_compile._spawn_and_wait([escapes, "calls", str(tmp_path / "f")], {}, allowed, "x")
    out = capfd.readouterr().out
    assert os.waitstatus_to_exitcode(status) == 0 and os.waitstatus_to_exitcode(status2) == 0, out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    got = {k: v.strip() for k, v in lines.items()}
    assert got["CapEff"] == got["CapBnd"] == "0000000000000000" and got["sethostname"] == "EPERM"
    assert got["memfd_create"] == "ENOSYS" and got["clone newuser"] == "EPERM" and got["fork"] == "ok"
    assert got["pthread_create"] == "ok" and got["posix_fallocate"] == "ok"


def test_the_confined_compile_changes_no_metadata_outside_its_write_set(tmp_path: Path) -> None:
    """What runs inside a confined compile (rustc, the linker, a proc macro) keeps uid 0 as root and owns
    the host's files; the read-only mount namespace refuses their mode, times and xattrs outside the write
    set, and leaves the write set's own (the link's chmod of its output) working."""
    from shim.confine.rustc_grants import Grants
    from shim.intercept import confined as confined_compile

    victim, out = tmp_path / "victim.txt", tmp_path / "out"
    victim.write_text("x")
    os.chmod(victim, 0o600)
    os.utime(victim, (1_000_000, 1_000_000))
    out.mkdir()
    (out / "bin").write_text("x")
    script = ("import os, sys\n"
              "for path in sys.argv[1:]:\n"
              "    for what, call in (('chmod', lambda p: os.chmod(p, 0o755)), ('utime', lambda p: os.utime(p, (5, 5))),\n"
              "                       ('xattr', lambda p: os.setxattr(p, 'user.cratecage', b'1'))):\n"
              "        try:\n"
              "            call(path); print(what, os.path.basename(path), 'ok')\n"
              "        except OSError as err:\n"
              "            print(what, os.path.basename(path), err.errno)\n")
    read = [*(landlock.loader_files(sys.executable) or []), sys.prefix, sys.base_prefix, "/usr/lib", "/lib", "/lib64"]
    allowed = Grants(execute=[sys.executable, *read], read=[*read, str(tmp_path)], write=[str(out), "/dev/null"])
    read_end, write_end = os.pipe()
    saved = os.dup(1)
    os.dup2(write_end, 1)
    try:
        status, _ = confined_compile._spawn_and_wait([sys.executable, "-I", "-S", "-c", script, str(victim),
                                                      str(out / "bin")], {}, allowed, "x")
    finally:
        os.dup2(saved, 1)
        os.close(write_end)
    lines = os.read(read_end, 65536).decode().splitlines()
    assert os.waitstatus_to_exitcode(status) == 0, lines
    assert {"chmod bin ok", "utime bin ok"} <= set(lines), lines
    assert not any(line.startswith(("chmod victim.txt ok", "utime victim.txt ok", "xattr victim.txt ok"))
                   for line in lines), lines
    st = victim.stat()
    assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o600, 1_000_000)


def test_drop_all_leaves_no_capability_in_a_child() -> None:
    code = ("import sys; sys.path.insert(0, %r)\nfrom shim.confine import caps\ncaps.drop_all()\n"
            "print(sorted(caps.held().items()))") % str(ROOT)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted({k: 0 for k in caps.held()}.items()))


def test_doctor_says_what_a_confined_child_gets() -> None:
    from shim.confine import hostns

    line = hostns.available()
    assert "every capability dropped" in line and ("IPC" in line or "no IPC" in line), line
