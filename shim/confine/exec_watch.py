"""What a confined program's tree tried to run outside its exec rights: for the denial's message.

A granted `sh` that runs a tool its confinement does not let it run gets EACCES from Landlock
(shim.confine.landlock: only the `--exec` trees of shim.confine.landlock_exec run), and prints something of its own, or
nothing, to a build script that may swallow it. The owner needs the program's path and the entry that would
let it run (`may-run`), so the launcher watches every execve of the tree, without deciding anything:

    program process   after Landlock, installs a seccomp filter whose execve/execveat return
                      SECCOMP_RET_USER_NOTIF (inherited by everything it starts, like every filter) and
                      sends the filter's listener to the launcher over a socket pair, then execs;
    launcher          a thread receives each call, reads the path the caller named (/proc/<pid>/mem, its
                      cwd or dirfd for a relative one), and, when that is an executable file outside the
                      exec trees (or a script whose interpreter is), appends a "refused" record to the
                      report file (`record`), and when it is a file a build driver built in this run
                      (OUT_DIR, the temp dir: `--run-output` of shim.confine.landlock_exec), a "ran" record, for the
                      audit trail; then it lets the call go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE), and
                      Landlock decides as it would have.

The watch only reports: the path it reads may change before the kernel looks at it (the man page's TOCTOU
warning about CONTINUE), which can make a report wrong, never an exec allowed. Where it cannot be set up
(no PID namespace, so no launcher beside the program; a listener already in the filter chain) nothing is
reported and every refusal stands. Each exec of the tree waits for one round trip
to the launcher's thread (~0.1 ms; a C compile runs five).

Standard library and ctypes only, as the launcher's other modules.
"""

from __future__ import annotations

import _thread
import ctypes
import os
import platform
import select
import socket
import stat
import struct

if False:  # typing only
    from typing import Final

_SECCOMP_SET_MODE_FILTER: Final = 1
_FILTER_FLAG_NEW_LISTENER: Final = 1 << 3
_RET_USER_NOTIF: Final = 0x7FC00000
_RET_ALLOW: Final = 0x7FFF0000
_NOTIF_FLAG_CONTINUE: Final = 1
_IOCTL_NOTIF_RECV: Final = 0xC0502100  # SECCOMP_IOWR(0, struct seccomp_notif), 80 bytes
_IOCTL_NOTIF_SEND: Final = 0xC0182101  # SECCOMP_IOWR(1, struct seccomp_notif_resp), 24 bytes
_AT_FDCWD: Final = -100
_AT_EMPTY_PATH: Final = 0x1000
_LD_ABS_W, _JEQ_K, _RET_K = 0x20, 0x15, 0x06
# machine -> (AUDIT_ARCH_*, __NR_seccomp, __NR_execve, __NR_execveat)
_ARCHES: Final = {"x86_64": (0xC000003E, 317, 59, 322), "amd64": (0xC000003E, 317, 59, 322),
                  "aarch64": (0xC00000B7, 277, 221, 281), "arm64": (0xC00000B7, 277, 221, 281)}


class _Data(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int32), ("arch", ctypes.c_uint32), ("ip", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("data", _Data)]


class _Resp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def filter_program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """execve and execveat of this ABI to the listener, everything else allowed (another ABI is killed by
    shim.confine.seccomp's filters)."""
    arch, _nr_seccomp, execve, execveat = _ARCHES[(machine or platform.machine()).lower()]
    return [
        (_LD_ABS_W, 0, 0, 4),              # 0: A = seccomp_data.arch
        (_JEQ_K, 0, 3, arch),              # 1: another ABI -> ALLOW
        (_LD_ABS_W, 0, 0, 0),              # 2: A = seccomp_data.nr
        (_JEQ_K, 2, 0, execve),            # 3: execve -> NOTIFY
        (_JEQ_K, 1, 0, execveat),          # 4: execveat -> NOTIFY
        (_RET_K, 0, 0, _RET_ALLOW),        # 5: ALLOW
        (_RET_K, 0, 0, _RET_USER_NOTIF),   # 6: NOTIFY
    ]


class Watch:
    """One launcher's watch: the report file and the socket pair the listener crosses."""

    def __init__(self, report: str, execute: list[str], granted: str, output: list[str] = ()) -> None:
        # Opened before the mount namespace makes everything outside the write set read-only.
        self.report = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.launcher_end, self.program_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.roots = sorted({os.path.realpath(p) for p in execute})
        self.output = sorted({os.path.realpath(p) for p in output})  # also in `roots`: reported when run
        self.granted = granted

    # -- in the program's process --
    def install(self) -> None:
        """Install the filter and hand its listener to the launcher; on any failure hand nothing (the
        launcher's thread then ends) and run unwatched. Needs no_new_privs (landlock.restrict set it)."""
        self.launcher_end.close()
        os.close(self.report)
        try:
            listener = _new_listener()
            try:
                socket.send_fds(self.program_end, [b"L"], [listener])
            finally:
                os.close(listener)
        except OSError:
            pass
        finally:
            self.program_end.close()

    def unwatched(self) -> None:
        """No launcher beside the program (no PID namespace): nothing to hand the listener to."""
        for end in (self.launcher_end, self.program_end):
            end.close()
        os.close(self.report)

    # -- in the launcher's process --
    def start(self) -> None:
        """Start the thread that serves the listener once it arrives. Before the PID namespace: a process
        whose children go to another PID namespace than its own cannot start threads (clone refuses
        CLONE_THREAD then)."""
        _thread.start_new_thread(self._serve, ())  # not `threading`: ~1 ms of imports on every spawn

    def in_launcher(self) -> None:
        """After the fork, in the launcher: the program's end of the pair is the program's alone."""
        self.program_end.close()

    def _serve(self) -> None:
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(self.launcher_end, 1, 1)
        except OSError:
            return
        if not fds:
            return
        try:
            self._answer(fds[0])
        finally:
            os.close(fds[0])  # a listener nobody serves fails every later exec of the tree with ENOSYS, not a hang

    def _answer(self, listener: int) -> None:
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        while True:
            events = [ev for _fd, ev in poller.poll()]
            if not any(ev & select.POLLIN for ev in events):
                return  # POLLHUP: every process of the tree has exited
            notif = _Notif()
            if _libc.ioctl(listener, ctypes.c_ulong(_IOCTL_NOTIF_RECV), ctypes.byref(notif)) != 0:
                err = ctypes.get_errno()
                if err in (4, 2):  # EINTR; ENOENT: the caller died before we got it
                    continue
                return
            try:
                self._note(notif)
            except Exception:  # noqa: BLE001 - a report lost, never an exec held up
                pass
            # CONTINUE (Linux 5.5; Landlock, without which there is no watch, needs 5.13): the kernel goes on
            # with the call as if unwatched, and Landlock decides.
            resp = _Resp(notif.id, 0, 0, _NOTIF_FLAG_CONTINUE)
            if _libc.ioctl(listener, ctypes.c_ulong(_IOCTL_NOTIF_SEND), ctypes.byref(resp)) != 0 \
                    and ctypes.get_errno() != 2:  # ENOENT: the caller is gone
                return

    def _note(self, notif: _Notif) -> None:
        pid, args = notif.pid, notif.data.args
        execveat = notif.data.nr == _ARCHES[platform.machine().lower()][3]
        named = _read_string(pid, args[1] if execveat else args[0])
        dirfd = ctypes.c_int32(args[0] & 0xFFFFFFFF).value if execveat else _AT_FDCWD
        if named is None:
            return
        if execveat and not named and args[4] & _AT_EMPTY_PATH:
            where = os.readlink(f"/proc/{pid}/fd/{dirfd}")
        elif named.startswith("/"):
            where = named
        else:
            base = os.readlink(f"/proc/{pid}/cwd" if dirfd == _AT_FDCWD else f"/proc/{pid}/fd/{dirfd}")
            where = os.path.join(base, named)
        verdict = self.verdict(os.path.realpath(where))
        if verdict is None:
            return
        try:
            by = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            by = ""
        os.write(self.report, record(verdict[0], where, verdict[1], by, self.granted))

    def verdict(self, real: str) -> tuple[str, str] | None:
        """What an exec of `real` is worth a record: ("refused", the file Landlock refuses: itself, or a
        script's interpreter), ("ran", itself) for a file of the run's output that runs, or None: a system
        tool that runs, or no executable file at all (a PATH search trying each directory).

        This thread runs unconfined, on a path the confined tree chose: nothing here may block or carry a
        file's contents into a message. So the file is judged open (`_executable`: non-blocking, no FIFO or
        device, the one inode stat'ed), and a `#!` line counts only when it names an executable file that
        exists (its path, which the tree could stat itself; never other words of a file it cannot read)."""
        if not _executable(real):
            return None
        if not self.runs(real):
            return "refused", real
        interpreter = _interpreter(real)
        if interpreter is not None and not self.runs(interpreter):
            return "refused", interpreter
        return ("ran", real) if _under(real, self.output) else None

    def runs(self, real: str) -> bool:
        return _under(real, self.roots)


def _under(real: str, roots: list[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)


# verdict: "refused" or "ran"; program: the path as the caller named it; file: what was refused (the program or
# its interpreter) or ran; by: the caller's executable; granted: the name the tree's program is granted as.
FIELDS: Final = ("verdict", "program", "file", "by", "granted")


def record(*fields: str) -> bytes:
    """One report: the FIELDS, each ended by a NUL (no path holds one; not json: ~2 ms of imports on every
    spawn), written with one append."""
    return b"".join(os.fsencode(f) + b"\0" for f in fields)


def read_report(data: bytes) -> list[dict[str, str]]:
    """The reports in a report file's bytes, as FIELDS -> value; an incomplete last one is dropped."""
    words = [os.fsdecode(w) for w in data.split(b"\0")[:-1]]
    n = len(FIELDS)
    return [dict(zip(FIELDS, words[i:i + n])) for i in range(0, len(words) - n + 1, n)]


def _new_listener() -> int:
    machine = platform.machine().lower()
    if machine not in _ARCHES:
        raise OSError(0, f"exec watch: unknown architecture {machine}")
    insns = filter_program(machine)
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    fd = _libc.syscall(ctypes.c_long(_ARCHES[machine][1]), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                       ctypes.c_uint(_FILTER_FLAG_NEW_LISTENER), ctypes.byref(prog))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _read_string(pid: int, address: int, limit: int = 4096) -> str | None:
    """The NUL-terminated string at `address` in process `pid`, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            data = mem.read(limit)
    except (OSError, ValueError, OverflowError):
        return None
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _open_regular(real: str) -> int | None:
    """`real` (a real path: no link left) opened without blocking (a FIFO put there after any stat opens at
    once, and is refused by the fstat), or None unless it is an executable regular file."""
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        os.close(fd)
        return None
    return fd


def _executable(real: str) -> bool:
    """Whether `real` is an executable regular file (one the user may run but not read is stat'ed: a stat
    never blocks)."""
    fd = _open_regular(real)
    if fd is not None:
        os.close(fd)
        return True
    try:
        st = os.stat(real, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111) and not os.access(real, os.R_OK)


def _interpreter(real: str) -> str | None:
    """The real path of the interpreter a `#!` line names, when that is an absolute path to an executable
    file; else None."""
    fd = _open_regular(real)
    if fd is None:
        return None
    try:
        head = os.pread(fd, 256, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words or not words[0].startswith(b"/"):
        return None
    named = os.path.realpath(words[0].decode("utf-8", "surrogateescape"))
    return named if _executable(named) else None
