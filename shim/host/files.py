"""The host side of file permission bits: what WASI preview 1 cannot say or change.

WASI's filestat has no mode and preview 1 has no chmod, so under the sandbox `fs::metadata(p)?.permissions()`
would be a guess (shim/rust/facade/src/stat.rs) and `fs::set_permissions` fails as unsupported; `fs::copy`
(wasip1's std never sets the copy's mode) loses the source's `+x`. A build script that copies a package's
`configure` and its `*.sh` helpers into OUT_DIR (tikv-jemalloc-sys) then fails in `config.status` with
"Permission denied". The std facade asks the host instead, through two imports (shim/host/abi.py
`FILE_IMPORTS`):

    file_mode (path, len, follow)   the permission bits (0o7777) of a path the run may read; the stat
                                    wrappers use them for `fs::metadata`/`symlink_metadata`
    chmod     (path, len, mode)     `chmod(path, mode & 0o777)` of a regular file or directory the run may
                                    write; `fs::set_permissions` and the facade's `fs::copy` use it

Paths are resolved the way the guest resolves them (wasi-libc, shim.build.run.preopen_table): the absolute
normal path (the facade sends one) picks the preopen whose guest path is its longest prefix, the last
registered among equally long ones, and the rest is looked up below that preopen's host directory. So a
path a view hides (a target directory in the package, shim.confine.fsview) is not found, and `..` was taken
lexically before any preopen was picked: it never climbs out of one.

`chmod` is a write and is held to stricter rules than the preopens' own:
  - the preopen must be writable (OUT_DIR, the run's temp dir, a writable grant); anything else is a fatal
    "filesystem-access" denial with the entry that would grant it, like a refused write;
  - the rest of the path is walked one component at a time with O_NOFOLLOW from the preopen's directory:
    a symbolic link anywhere below it, even one pointing inside, is refused (the file is changed through
    an O_PATH descriptor of the very inode that was checked, so nothing can swap it in between);
  - only a regular file or a directory; a regular file must have one link (st_nlink == 1): a hard link in
    OUT_DIR to a file elsewhere (a granted program can make one) would otherwise change the file
    elsewhere. A file with one link has no name outside the write set, so changing it changes nothing
    else. Requiring "created by this run" instead would refuse OUT_DIR's files from the script's previous
    run, which cargo keeps and scripts overwrite;
  - setuid, setgid and sticky bits are dropped (mode & 0o777); a directory keeps u+rwx, so the host can
    still list what the run leaves there (shim.build.run.check_leftovers).
A writable *file* grant is a hard link in a view (shim.confine.fsview.file_views), so its mode cannot be changed.

`file_mode` answers only for paths inside a preopen; following a symbolic link is allowed only where it
stays inside the same preopen's host directory (as wasmtime follows links: no absolute link, no `..` out).
The kernel resolves the path in one call, `openat2(preopen fd, rest, O_PATH, RESOLVE_BENEATH)` (Linux 5.6),
and the bits come from the descriptor it returns: a link swapped in meanwhile (a granted program writes
OUT_DIR while the guest runs) is judged by the same resolution that opens it, never checked first and
followed after. Without openat2 no link is followed at all (`open_below`). Its errors are not denials:
the stat wrappers fall back to their plausible bits. Cost: ~10 µs a call (two realpaths and a stat were
~170 µs with a granted tree's deep path).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from typing import Final

import wasmtime

from shim.host import abi
from shim.host.context import RunContext
from shim.host.process import GuestMemory, HostCallError, ProcessTable, define_imports, guarded
from shim.lexical import inside, normal_path

CAPABILITY: Final = "filesystem-access"
MAX_PATH: Final = 4096  # bytes, PATH_MAX: a longer path is malformed
SETTABLE: Final = 0o777  # what chmod may set: never setuid, setgid or sticky
DIR_KEEPS: Final = 0o700  # a directory stays listable by its owner (the host)
_U32: Final = 0xFFFFFFFF

Preopen = tuple[str, str, bool]  # (host dir, guest path, writable), as shim.build.run.preopen_table


def preopen_of(path: str, preopens: list[Preopen]) -> tuple[Preopen, list[str]] | None:
    """The preopen that serves the absolute normal `path` and the components below it, as wasi-libc picks
    it: the longest guest prefix, the last registered among equally long ones ("." is the package again)."""
    best: tuple[Preopen, str] | None = None
    for entry in preopens:
        guest = entry[1]
        if guest == ".":
            continue
        guest = normal_path(guest)
        if inside(path, guest) and (best is None or len(guest) >= len(best[1])):
            best = (entry, guest)
    if best is None:
        return None
    rest = path[len(best[1]):] if best[1] != "/" else path
    return best[0], [c for c in rest.split("/") if c]


def open_below(root: str, parts: list[str]) -> int:
    """An O_PATH descriptor of `root/parts...`, no symbolic link followed below `root`. Raises OSError."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(parts):
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if i < len(parts) - 1 else 0)
            nxt = os.open(name, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, "a symbolic link")
        return fd
    except BaseException:
        os.close(fd)
        raise


_OPENAT2: Final = 437  # the same number on every architecture (the generic syscall table's)
_RESOLVE_BENEATH: Final = 0x08
_RESOLVE_NO_MAGICLINKS: Final = 0x02


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_have_openat2 = True


def open_beneath(root: str, parts: list[str], follow: bool) -> int:
    """An O_PATH descriptor of `root/parts...`, resolved by the kernel without leaving `root` (symbolic links
    followed where they stay below it; with `follow` False, not the last one). Raises OSError (EXDEV: it
    leads out)."""
    global _have_openat2
    if not _have_openat2:
        return open_below(root, parts)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW), 0,
                       _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
        got = _libc.syscall(_OPENAT2, fd, os.fsencode("/".join(parts) or "."), ctypes.byref(how),
                            ctypes.sizeof(how))
        if got < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSYS:  # before Linux 5.6 (or a seccomp filter refusing it): follow nothing
                _have_openat2 = False
                return open_below(root, parts)
            raise OSError(err, os.strerror(err))
        return got
    finally:
        os.close(fd)


def chmod_fd(fd: int, mode: int) -> None:
    """chmod the inode an O_PATH descriptor holds (fchmod refuses O_PATH: the proc link does not)."""
    os.chmod(f"/proc/self/fd/{fd}", mode)


class Files:
    """File modes for one run. `abi_<import>` are the host functions (failures raise HostCallError, which
    `guarded` turns into a code and the run's last_error)."""

    def __init__(self, ctx: RunContext, preopens: list[Preopen]) -> None:
        self.ctx = ctx
        self.preopens = preopens

    def _path(self, mem: GuestMemory, ptr: int, length: int) -> str:
        if length & _U32 > MAX_PATH:
            raise HostCallError(abi.E_INVALID, "cratecage: path too long")
        raw = mem.read(ptr, length)
        if not raw.startswith(b"/") or b"\0" in raw:
            raise HostCallError(abi.E_INVALID, "cratecage: the host takes absolute paths")
        return normal_path(os.fsdecode(raw))

    def abi_file_mode(self, mem: GuestMemory, ptr: int, length: int, follow: int) -> int:
        return self.file_mode(self._path(mem, ptr, length), bool(follow))

    def abi_chmod(self, mem: GuestMemory, ptr: int, length: int, mode: int) -> int:
        self.chmod(self._path(mem, ptr, length), mode & _U32)
        return 0

    def file_mode(self, path: str, follow: bool) -> int:
        found = preopen_of(path, self.preopens)
        if found is None:
            raise HostCallError(abi.E_NOT_FOUND, f"cratecage: {path}: outside the sandbox's directories")
        (host, _guest, _w), parts = found
        try:
            fd = open_beneath(host, parts, follow)
        except OSError as err:
            why = "leads out of its directory" if err.errno == errno.EXDEV else err.strerror
            raise HostCallError(abi.E_NOT_FOUND, f"cratecage: {path}: {why}") from None
        try:
            return stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def chmod(self, path: str, mode: int) -> None:
        found = preopen_of(path, self.preopens)
        if found is None or not found[0][2]:
            self._deny(path, "outside OUT_DIR, the temp dir and the writable grants", grantable=True)
        (host, _guest, _w), parts = found  # type: ignore[misc]
        try:
            fd = open_below(host, parts)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR) and self._link_on_the_way(host, parts):
                self._deny(path, "reached through a symbolic link, which permission changes never follow")
            raise HostCallError(abi.E_NOT_FOUND if err.errno == errno.ENOENT else abi.E_IO,
                                f"cratecage: {path}: {err.strerror}") from None
        try:
            st = os.fstat(fd)
            mode &= SETTABLE
            if stat.S_ISDIR(st.st_mode):
                mode |= DIR_KEEPS
            elif not stat.S_ISREG(st.st_mode):
                self._deny(path, "not a regular file or directory")
            elif st.st_nlink != 1:
                self._deny(path, f"a file with {st.st_nlink} hard links: the change would reach its other "
                           "names, which may lie outside what the build script may write")
            try:
                chmod_fd(fd, mode)
            except OSError as err:
                raise HostCallError(abi.E_DENIED if err.errno in (errno.EPERM, errno.EACCES) else abi.E_IO,
                                    f"cratecage: chmod {path}: {err.strerror}") from None
        finally:
            os.close(fd)

    @staticmethod
    def _link_on_the_way(host: str, parts: list[str]) -> bool:
        here = host
        for name in parts:
            here = os.path.join(here, name)
            if os.path.islink(here):
                return True
        return False

    def _deny(self, path: str, reason: str, *, grantable: bool = False) -> None:
        fix = ""
        if grantable:
            from shim.policy import suggest_entry

            fix = suggest_entry(self.ctx.kind, self.ctx.crate, CAPABILITY, path, writable=True)
        denial = self.ctx.deny(CAPABILITY, f"chmod {path}", reason, fix)
        raise HostCallError(abi.E_DENIED, denial.render(self.ctx.crate, self.ctx.version))


def define(linker: wasmtime.Linker, ctx: RunContext, processes: ProcessTable, preopens: list[Preopen]) -> Files:
    """Define the imports of `abi.FILE_IMPORTS` for one run (errors go to the process table's last_error)."""
    files = Files(ctx, preopens)
    define_imports(linker, abi.FILE_IMPORTS, lambda name: guarded(processes, name, files))
    return files
