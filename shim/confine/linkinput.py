"""Whether a file a build script left in OUT_DIR is a linker input of the target's format, judged by its bytes.

Why this exists: a `rustc-link-search` into OUT_DIR makes rustc pass `-L <dir>` to the linker of the
crate and of every crate that depends on it, and the linker looks in that directory for *every* `-l` of
the link, including the `-lc -lgcc_s -lm ...` that rustc adds for std. GNU ld, gold and lld accept, under
any library name, a text file that is a linker script: `INPUT(/home/u/.ssh/id_rsa)`, `GROUP(...)` and
`INCLUDE file` make the linker open host files (and quote them back in its errors), `SEARCH_DIR`,
`OUTPUT(...)` and the rest steer it. A thin archive (`!<thin>\\n`) names its members by *path*, so the
linker reads them from wherever they point. So a file name proves nothing; only its bytes do.

A file passes when it is one of (all of the ELF class, byte order and machine of the target being built,
`elf_identity(TARGET)`, or of the running host when no target is given):

  - an ELF relocatable object (ET_REL): `name.o` through a `+verbatim` library;
  - an ELF shared object (ET_DYN): the linker reads its dynamic symbols and looks up the libraries its
    DT_NEEDED entries name the same way it looks up `-l`;
  - a regular `!<arch>\\n` archive whose members are all such objects, besides the archive's own
    bookkeeping members: the symbol table (`/`, `/SYM64/`, `__.SYMDEF*`) and the long-name table (`//`).
    A member is read only by its offset in the archive itself, never by a path.

  - an archive of Windows import objects, as the windows_* crates ship them (`<package>/lib`, which their
    build scripts put on the search path on every target): members that are COFF objects of a Windows
    machine with only code and import-table sections (`.text`, `.idata$2` to `.idata$7`), or short import
    records. Such a member names a DLL for the Windows loader, never a file for the linker: lld skips it
    ("neither ET_REL nor LLVM bitcode"), GNU ld reads it through BFD's PE reader; neither opens anything
    else. A COFF member with any other section (`.drectve` holds linker flags, `.gnu.lto_*` would wake the
    LTO plugin), an optional header (an image, not an object) or a long section name is refused.
    Only where such an archive can mean something (`imports`): for a Windows target (`windows_target`),
    and, for any other, in a package directory (what the windows_* crates print on every target), never in
    OUT_DIR. An ELF link has no use for one, and GNU ld dies on it: a member it pulls in (`-l` of the
    archive, a `#[link]`, `+whole-archive`) hits an assertion in BFD's relocation code and a SIGSEGV
    (ld 2.40, with windows_x86_64_gnu's own archive), so a crafted member is memory corruption in a linker
    that may run unconfined (doctests, below). shim/build/directives.py also refuses a `rustc-link-lib` of one
    for a target that is not Windows.

and, whatever its header says, nothing in it makes the linker read, load or run another file
(shim/confine/elfcheck.py: `.deplibs`, linker options, LTO IR, RPATH/RUNPATH, DT_NEEDED paths, ...). LLVM
bitcode, alone or as an archive member, is refused: its metadata can name dependent libraries and linker
options, and its words cannot be checked here; `-Clinker-plugin-lto` archives need a grant.

Anything else is refused: text (scripts), thin archives, other machines' objects, executables (ET_EXEC,
or ET_DYN with an interpreter), FIFOs, devices and directories (a FIFO named `libc.a` would block the
linker forever), and any ELF file whose tables do not parse.

Why the contents and not only the header: the confined linker (Landlock, see README Limits) is not the
only one that reads these files. `cargo test --doc` links each doctest with rustdoc, which cargo runs
directly, never through RUSTC_WRAPPER, with the crate's `-L native=OUT_DIR` paths: that link runs
natively and unconfined, so this check is all that stands between a planted file and the host there.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import struct
import sys

from shim.confine.elfcheck import ET_DYN, ET_REL, contents_problem

if False:  # typing only: the checking linker (shim.confine.linkcheck) imports this module in every link
    from typing import Final

    from shim.confine.elfcheck import Reader

ELF_MAGIC: Final = b"\x7fELF"
AR_MAGIC: Final = b"!<arch>\n"
THIN_MAGIC: Final = b"!<thin>\n"
BITCODE_MAGICS: Final = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")  # raw bitcode, and its wrapper header
AR_HEADER: Final = 60
AR_BOOKKEEPING: Final = frozenset({"/", "//", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED",
                                   "__.SYMDEF_64", "__.SYMDEF_64 SORTED", "/<ECSYMBOLS>/"})
# Windows machines whose import objects an archive may hold (IMAGE_FILE_MACHINE_*), and the sections an
# import object has: code (the thunk) and the import tables. Nothing else, by exact name.
COFF_MACHINES: Final = frozenset({0x014C, 0x01C4, 0x8664, 0xAA64})  # i386, ARMv7, x86-64, ARM64
COFF_SECTIONS: Final = frozenset({b".text", *(b".idata$%d" % i for i in range(2, 8))})
COFF_HEADER: Final = 20
COFF_SECTION_HEADER: Final = 40
COFF_IMPORT_SIGNATURE: Final = (0x0000, 0xFFFF)  # IMPORT_OBJECT_HEADER's Sig1, Sig2
NO_IMPORTS: Final = "a Windows import object, which only a Windows target links (GNU ld crashes on one elsewhere)"
MAX_MEMBERS: Final = 1 << 20  # more than any real archive; bounds the walk over a crafted one
ELF_HEAD: Final = 64  # an ELF64 header; an ELF32 one (52 bytes) is followed by more of the file

Identity = tuple[int, int, int]  # (EI_CLASS, EI_DATA, e_machine); (0, 0, 0): no ELF file is of this format
NOT_ELF: Final[Identity] = (0, 0, 0)
_32, _64, _LE, _BE = 1, 2, 1, 2

# The target triple's architecture (its first field), matched in order, -> the ELF identity of its objects.
# One row per family; anything not listed, and every non-ELF target (wasm, Windows, Apple, UEFI), gets
# NOT_ELF: its libraries need a grant.
ARCHES: Final[tuple[tuple[str, Identity], ...]] = (
    (r"x86_64h?", (_64, _LE, 62)),
    (r"i[3-6]86", (_32, _LE, 3)),
    (r"aarch64", (_64, _LE, 183)),
    (r"aarch64_be", (_64, _BE, 183)),
    (r"(arm|thumb)(v[0-9a-z.]*)?", (_32, _LE, 40)),
    (r"(arm|thumb)eb(v[0-9a-z.]*)?", (_32, _BE, 40)),
    (r"riscv64[a-z0-9_]*", (_64, _LE, 243)),
    (r"riscv32[a-z0-9_]*", (_32, _LE, 243)),
    (r"powerpc", (_32, _BE, 20)),
    (r"powerpc64", (_64, _BE, 21)),
    (r"powerpc64le", (_64, _LE, 21)),
    (r"s390x", (_64, _BE, 22)),
    (r"mips(isa32r6)?", (_32, _BE, 8)),
    (r"mips(isa32r6)?el", (_32, _LE, 8)),
    (r"mips64|mipsisa64r6", (_64, _BE, 8)),
    (r"mips64el|mipsisa64r6el", (_64, _LE, 8)),
    (r"loongarch64", (_64, _LE, 258)),
    (r"sparc64|sparcv9", (_64, _BE, 43)),
)
NON_ELF_SYSTEMS: Final = re.compile(r"apple|darwin|ios|tvos|watchos|visionos|windows|uefi|wasm|wasi")
WINDOWS_SYSTEMS: Final = re.compile(r"-windows(-|$)")  # x86_64-pc-windows-gnu, aarch64-uwp-windows-msvc, ...
ILP32_ABIS: Final = re.compile(r"-gnux32$|_ilp32$")  # 32-bit ELF on a 64-bit architecture


@functools.lru_cache(maxsize=1)
def host_elf() -> Identity:
    """The ELF identity of the running interpreter: the host's."""
    for exe in ("/proc/self/exe", sys.executable):
        try:
            with open(exe, "rb") as f:
                head = f.read(20)
        except OSError:
            continue
        if head[:4] == ELF_MAGIC:
            return head[4], head[5], int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return NOT_ELF  # not an ELF host: nothing is of its format, every library needs a grant


@functools.lru_cache(maxsize=64)
def elf_identity(target: str = "") -> Identity:
    """The ELF identity of objects for the target triple `target` (cargo's TARGET), by ARCHES; the
    host's when `target` is empty; NOT_ELF for a target whose objects are not ELF or that is unknown."""
    if not target:
        return host_elf()
    arch = target.split("-", 1)[0]
    if NON_ELF_SYSTEMS.search(target) or "-" not in target:
        return NOT_ELF
    ident = next((ident for pattern, ident in ARCHES if re.fullmatch(pattern, arch)), NOT_ELF)
    return (_32, ident[1], ident[2]) if ident != NOT_ELF and ILP32_ABIS.search(target) else ident


def windows_target(target: str) -> bool:
    """Whether `target` (cargo's TARGET; "" for the host, which is no Windows: cratecage runs on Linux) links
    Windows COFF objects, where an archive of import objects is a library."""
    return WINDOWS_SYSTEMS.search(target) is not None


def _elf_problem(read: Reader, size: int, types: tuple[int, ...], ident: Identity) -> str:
    """"" when the file `read` gives is an ELF file of identity `ident`, of one of `types`, with nothing
    in it that makes the linker read another file (shim.confine.elfcheck)."""
    head = read(0, ELF_HEAD)
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return "not an ELF file"
    order = "little" if head[5] == 1 else "big"
    if ident == NOT_ELF or (head[4], head[5], int.from_bytes(head[18:20], order)) != ident:
        return "an ELF file for another machine"
    e_type = int.from_bytes(head[16:18], order)
    if e_type not in types:
        return "an ELF file that is neither a relocatable object nor a shared object"
    if len(head) < (ELF_HEAD if head[4] == 2 else 52):
        return "a malformed ELF file (a truncated header)"
    return contents_problem(read, size, head, e_type)


def _coff_problem(read: Reader, size: int) -> str | None:
    """None when the member is no Windows COFF object or import record at all; "" when it is one of the
    import objects the module docstring allows; else what it is instead."""
    head = read(0, COFF_HEADER)
    if len(head) < COFF_HEADER:
        return None
    sig1, sig2, version, machine = struct.unpack_from("<HHHH", head)
    if (sig1, sig2) == COFF_IMPORT_SIGNATURE:  # a short import record: header, symbol name, DLL name
        if version != 0 or machine not in COFF_MACHINES:
            return "a Windows import record of an unknown version or machine"
        data_size, = struct.unpack_from("<I", head, 12)
        return "" if COFF_HEADER + data_size <= size else "a malformed Windows import record"
    machine, count, _, _, _, optional, _ = struct.unpack_from("<HHIIIHH", head)
    if machine not in COFF_MACHINES:
        return None
    if optional:
        return "a Windows image, not an object"
    table = read(COFF_HEADER, count * COFF_SECTION_HEADER)
    if not count or len(table) < count * COFF_SECTION_HEADER:
        return "a malformed Windows object"
    for i in range(count):
        name = table[i * COFF_SECTION_HEADER:i * COFF_SECTION_HEADER + 8].rstrip(b"\0")
        raw_size, raw_offset = struct.unpack_from("<II", table, i * COFF_SECTION_HEADER + 16)
        if name not in COFF_SECTIONS:
            return (f"a Windows object with a section {name.decode('latin-1')!r} (only code and import tables "
                    "are allowed)")
        if raw_size and raw_offset + raw_size > size:
            return "a malformed Windows object (a section beyond its end)"
    return ""


def _reader(fd: int, base: int, size: int) -> Reader:
    """Reads of the `size` bytes at `base` in the open file `fd` (a file, or a member of an archive)."""
    def read(offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= size:
            return b""
        return os.pread(fd, min(length, size - offset), base + offset)
    return read


def _archive_problem(fd: int, size: int, ident: Identity, imports: bool) -> str:
    """Walk the members of an `!<arch>` archive whose magic has been read."""
    pos = len(AR_MAGIC)
    # Readers take a symbol table only as the first member and the GNU name table (`//`) only right after it
    # (or first); a later member of either name is an ordinary member to lld, and is judged as one here.
    allowed = set(AR_BOOKKEEPING)
    for _ in range(MAX_MEMBERS):
        if pos >= size:
            return ""
        header = os.pread(fd, AR_HEADER, pos)
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
        bookkeeping = name in allowed
        allowed = {"//"} if bookkeeping and name != "//" else set()
        if not bookkeeping:
            read = _reader(fd, pos + AR_HEADER + skip, length - skip)
            if read(0, 4).startswith(BITCODE_MAGICS):
                return ("an archive with an LLVM bitcode member (its metadata can name libraries and options "
                        "for the linker)")
            coff = None if read(0, 4) == ELF_MAGIC else _coff_problem(read, length - skip)
            if coff == "" and not imports:
                coff = NO_IMPORTS
            problem = coff if coff is not None else _elf_problem(read, length - skip, (ET_REL,), ident)
            if problem:
                problem = problem.replace("not an ", "no ", 1)
                return f"an archive with a member that is {problem}"
        pos += AR_HEADER + length + (length & 1)
    return "an archive with too many members"


def problem(path: str, target: str = "", *, imports: bool | None = None) -> str:
    """"" when the file at `path` is a linker input of `target`'s format (cargo's TARGET triple; the
    host's when empty) with nothing in it that makes the linker read another file (see the module
    docstring), else what it is instead, e.g. "not an archive, object or shared object (text ...)".
    `imports`: whether archives of Windows import objects pass (default: for a Windows target only). A
    FIFO or device is never opened: stat first, then open non-blocking and check the opened file again."""
    if imports is None:
        imports = windows_target(target)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "not a regular file"
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        return f"unreadable ({err.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        ident = elf_identity(target)
        head = os.pread(fd, ELF_HEAD, 0)
        if head.startswith(AR_MAGIC):
            return _archive_problem(fd, st.st_size, ident, imports)
        if head.startswith(THIN_MAGIC):
            return "a thin archive (its members are paths the linker would read)"
        if head.startswith(BITCODE_MAGICS):
            return "LLVM bitcode (its metadata can name libraries and options for the linker)"
        if head[:4] != ELF_MAGIC:
            return "not an archive, object or shared object (text such as a linker script, or unknown data)"
        return _elf_problem(_reader(fd, 0, st.st_size), st.st_size, (ET_REL, ET_DYN), ident)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    finally:
        os.close(fd)
