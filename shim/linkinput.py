"""Whether a file a build script left in OUT_DIR is a linker input of the host's format, judged by its bytes.

Why this exists: a `rustc-link-search` into OUT_DIR makes rustc pass `-L <dir>` to the linker of the
crate and of every crate that depends on it, and the linker looks in that directory for *every* `-l` of
the link, including the `-lc -lgcc_s -lm ...` that rustc adds for std. GNU ld, gold and lld accept, under
any library name, a text file that is a linker script: `INPUT(/home/u/.ssh/id_rsa)`, `GROUP(...)` and
`INCLUDE file` make the linker open host files (and quote them back in its errors), `SEARCH_DIR`,
`OUTPUT(...)` and the rest steer it. A thin archive (`!<thin>\\n`) names its members by *path*, so the
linker reads them from wherever they point. So a file name proves nothing; only its bytes do.

A file passes when it is one of (all of the running host's ELF class, byte order and machine, the
`HOST_ELF` identity, read from this interpreter's own executable):

  - an ELF relocatable object (ET_REL): `name.o` through a `+verbatim` library;
  - an ELF shared object (ET_DYN): the linker reads its dynamic symbols and, at most, looks up the
    libraries its DT_NEEDED entries name the same way it looks up `-l` (no script is read from an ELF);
  - a regular `!<arch>\\n` archive whose members are all such objects or LLVM bitcode (rustc and lld read
    `-Clinker-plugin-lto` archives), besides the archive's own bookkeeping members: the symbol table
    (`/`, `/SYM64/`, `__.SYMDEF*`) and the long-name table (`//`). A member is read only by its offset in
    the archive itself, never by a path.

Anything else is refused: text (scripts), thin archives, other machines' objects, executables (ET_EXEC),
FIFOs, devices and directories (a FIFO named `libc.a` would block the linker forever). What the linker
does with an accepted file is parse ELF: the linker itself runs confined (Landlock, see README Limits),
so a malformed object can at worst crash it inside that confinement.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
from typing import BinaryIO, Final

ELF_MAGIC: Final = b"\x7fELF"
AR_MAGIC: Final = b"!<arch>\n"
THIN_MAGIC: Final = b"!<thin>\n"
BITCODE_MAGICS: Final = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")  # raw bitcode, and its wrapper header
ET_REL: Final = 1
ET_DYN: Final = 3
AR_HEADER: Final = 60
AR_BOOKKEEPING: Final = frozenset({"/", "//", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED",
                                   "__.SYMDEF_64", "__.SYMDEF_64 SORTED", "/<ECSYMBOLS>/"})
MAX_MEMBERS: Final = 1 << 20  # more than any real archive; bounds the walk over a crafted one


@functools.lru_cache(maxsize=1)
def host_elf() -> tuple[int, int, int]:
    """(EI_CLASS, EI_DATA, e_machine) of the running interpreter: the host's ELF identity."""
    for exe in ("/proc/self/exe", sys.executable):
        try:
            with open(exe, "rb") as f:
                head = f.read(20)
        except OSError:
            continue
        if head[:4] == ELF_MAGIC:
            return head[4], head[5], int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return (0, 0, 0)  # not an ELF host: nothing is of its format, every library needs a grant


def _elf_problem(head: bytes, types: tuple[int, ...]) -> str:
    """"" when `head` (at least 20 bytes) starts an ELF file of the host's identity and one of `types`."""
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return "not an ELF file"
    cls, data, machine = host_elf()
    order = "little" if data == 1 else "big"
    if (head[4], head[5], int.from_bytes(head[18:20], order)) != (cls, data, machine):
        return "an ELF file for another machine"
    if int.from_bytes(head[16:18], order) not in types:
        return "an ELF file that is neither a relocatable object nor a shared object"
    return ""


def _archive_problem(f: BinaryIO, size: int) -> str:
    """Walk the members of an `!<arch>` archive whose magic has been read."""
    pos = len(AR_MAGIC)
    for _ in range(MAX_MEMBERS):
        if pos >= size:
            return ""
        f.seek(pos)
        header = f.read(AR_HEADER)
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            return "a malformed archive"
        name = header[:16].decode("latin-1").rstrip(" ")
        try:
            length = int(header[48:58].decode("ascii").strip() or "-1")
        except ValueError:
            return "a malformed archive"
        if length < 0 or pos + AR_HEADER + length > size:
            return "a malformed archive"
        skip = 0
        if name.startswith("#1/"):  # BSD long name: stored before the data, counted in its length
            skip = int(name[3:]) if name[3:].isdigit() else length + 1
            if skip > length:
                return "a malformed archive"
        if name not in AR_BOOKKEEPING:
            f.seek(pos + AR_HEADER + skip)
            member = f.read(20)
            if not member.startswith(BITCODE_MAGICS):
                problem = _elf_problem(member, (ET_REL,))
                if problem:
                    return f"an archive with a member that is {problem.replace('not an ', 'no ')}"
        pos += AR_HEADER + length + (length & 1)
    return "an archive with too many members"


def problem(path: str) -> str:
    """"" when the file at `path` is a linker input of the host's format (see the module docstring),
    else what it is instead, e.g. "not an archive, object or shared object (text ...)". A FIFO or device
    is never opened: stat first, then open non-blocking and check the opened file again."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "not a regular file"
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        return f"unreadable ({err.strerror})"
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        head = f.read(20)
        if head.startswith(AR_MAGIC):
            return _archive_problem(f, st.st_size)
    if head.startswith(THIN_MAGIC):
        return "a thin archive (its members are paths the linker would read)"
    if head[:4] != ELF_MAGIC:
        return "not an archive, object or shared object (text such as a linker script, or unknown data)"
    return _elf_problem(head, (ET_REL, ET_DYN))
