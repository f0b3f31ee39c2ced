"""What a linker does with an ELF file beyond linking its code: the sections and dynamic entries that make
it (or the program it writes) read, load or run other files. shim/confine/linkinput.py asks this about every
object, archive member and shared object a build script leaves for the linker.

Why this exists: an ELF header proves only that a file is an ELF file. Its *contents* steer the linker:

  - rust-lld opens every string of a SHT_LLVM_DEPENDENT_LIBRARIES section (`.deplibs`) as a library,
    by absolute path if it is one, and parses a text file it finds there as a linker script (quoting its
    first line in the error). SHT_LLVM_LINKER_OPTIONS (`.linker-options`) carries linker flags;
    SHT_LLVM_LTO (`.llvm.lto`) and GCC's `.gnu.lto_*` sections are compiler IR that the linker hands to
    LLVM or, through ld.bfd's LTO plugin, to `lto-wrapper`, which runs gcc with the options recorded in
    `.gnu.lto_.opts`. LLVM IR itself can carry `llvm.dependent-libraries` and linker options, so
    bitcode is refused wherever it appears (see linkinput). Any LLVM section type not known to be inert
    is refused: that range is where LLVM puts new linker-interpreted sections.
  - a relocatable object with `.dynamic` or `.interp` (by type or by name: ld.bfd finds `.dynamic` by
    name) would splice dynamic entries or an interpreter path into the linked program.
  - a shared object's DT_RPATH/DT_RUNPATH are searched by ld.bfd at link time for the libraries its
    DT_NEEDED entries name, `$ORIGIN` included; DT_AUXILIARY/DT_FILTER/DT_AUDIT/DT_DEPAUDIT/DT_CONFIG
    name files the loader reads; a DT_NEEDED with a `/` is opened by that path, and DT_SONAME is copied
    into the program's DT_NEEDED. A PT_INTERP marks an executable, not a library.

Deliberately allowed: `.gnu.linkonce.*` (old-style COMDAT: the linker keeps one copy, reads nothing) and
`.note.GNU-split-stack` (gold rewrites calls into split-stack code; it reads no file). Everything that
does not parse (a section table out of the file, a name out of its string table, two dynamic
sections) is refused: a linker and this check must not read different things in one file.
"""

from __future__ import annotations

import re
import struct

if False:  # typing only: the checking linker (shim.confine.linkcheck) imports this module in every link
    from typing import Callable, Final

    Reader = Callable[[int, int], bytes]  # (offset, length) -> at most `length` bytes of the file or member

ET_REL: Final = 1
ET_DYN: Final = 3
SHT_DYNAMIC: Final = 6
SHT_NOBITS: Final = 8
SHT_STRTAB: Final = 3
PT_DYNAMIC: Final = 2
PT_INTERP: Final = 3

# Section types the linker acts on beyond placing bytes, with what they make it do.
REFUSED_TYPES: Final[dict[int, str]] = {
    10: "SHT_SHLIB (reserved, no meaning a linker should guess)",
    0x6FFFFFF7: "SHT_GNU_LIBLIST (a list of libraries to load)",
    0x6FFF4C00: "SHT_LLVM_ODRTAB",
    0x6FFF4C01: "SHT_LLVM_LINKER_OPTIONS (flags for the linker)",
    0x6FFF4C04: "SHT_LLVM_DEPENDENT_LIBRARIES (libraries the linker opens, by path)",
    0x6FFF4C0B: "SHT_LLVM_OFFLOADING (device images for another link)",
    0x6FFF4C0C: "SHT_LLVM_LTO (LLVM IR the linker compiles)",
}
LLVM_TYPES: Final = range(0x6FFF4C00, 0x6FFF4D00)
# LLVM section types that only describe the object's own code (address-significance, call-graph profile,
# basic-block maps, partitions, jump-table sizes): clang emits some of them in every object.
INERT_LLVM_TYPES: Final = frozenset({0x6FFF4C02, 0x6FFF4C03, 0x6FFF4C05, 0x6FFF4C06, 0x6FFF4C07, 0x6FFF4C08,
                                     0x6FFF4C09, 0x6FFF4C0A, 0x6FFF4C0D})
# Section names the linker acts on whatever their type (ld.bfd finds some by name), exact or as a prefix.
REFUSED_NAMES: Final[dict[str, str]] = {
    ".deplibs": "libraries the linker opens, by path",
    ".linker-options": "flags for the linker",
    ".llvm.lto": "LLVM IR the linker compiles",
    ".llvm.offloading": "device images for another link",
}
REFUSED_NAME_PREFIXES: Final[dict[str, str]] = {
    ".gnu.lto_": "GCC LTO IR: ld.bfd's plugin runs gcc with the options it records",
    ".gnu.offload_lto_": "GCC offload IR: ld.bfd's plugin runs gcc with the options it records",
    ".gnu.debuglto_": "GCC LTO debug info, read by lto-wrapper",
}
# In a relocatable object, sections that only a linked program has: the linker would splice them in.
LINKED_ONLY_NAMES: Final = frozenset({".dynamic", ".interp"})

# Dynamic tags that name files the linker or the loader opens, with what they do.
REFUSED_TAGS: Final[dict[int, str]] = {
    15: "DT_RPATH (ld.bfd searches it at link time)",
    29: "DT_RUNPATH (ld.bfd searches it at link time)",
    0x7FFFFFFD: "DT_AUXILIARY (a filter library the loader opens)",
    0x7FFFFFFF: "DT_FILTER (a filter library the loader opens)",
    0x6FFFFEFA: "DT_CONFIG (a configuration file the loader reads)",
    0x6FFFFEFB: "DT_DEPAUDIT (an audit library the loader runs)",
    0x6FFFFEFC: "DT_AUDIT (an audit library the loader runs)",
}
DT_NEEDED: Final = 1
DT_STRTAB: Final = 5
DT_SONAME: Final = 14
# A DT_NEEDED/DT_SONAME the linker looks up by name in its search path (never by path, no `$ORIGIN`):
# the names shim.build.directives checks in an OUT_DIR search directory.
LIBRARY_NAME: Final = re.compile(r"(lib|ld-)[A-Za-z0-9_+.-]*\.so(\.[0-9]+)*")
MAX_SECTIONS: Final = 1 << 22


class Section:
    """One section header of an ELF file."""

    __slots__ = ("name", "type", "addr", "offset", "size", "link", "entsize")

    def __init__(self, name: str, type: int, addr: int, offset: int, size: int, link: int, entsize: int) -> None:
        self.name, self.type, self.addr, self.offset = name, type, addr, offset
        self.size, self.link, self.entsize = size, link, entsize


class Malformed(Exception):
    """The file does not parse the way a linker would need it to."""


def _layout(head: bytes) -> tuple[str, bool]:
    """(struct byte-order prefix, is ELF64) of an ELF identity already known to be valid."""
    return ("<" if head[5] == 1 else ">"), head[4] == 2


def _sections(read: Reader, size: int, head: bytes) -> list[Section]:
    order, wide = _layout(head)
    shoff, = struct.unpack_from(order + ("Q" if wide else "I"), head, 0x28 if wide else 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", head, 0x3A if wide else 0x2E)
    entry = order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
    if shoff == 0:
        raise Malformed("no section table")
    if shentsize != struct.calcsize(entry):
        raise Malformed("a section table of an unexpected entry size")

    def raw(index: int) -> tuple[int, ...]:
        data = read(shoff + index * shentsize, shentsize)
        if len(data) < shentsize:
            raise Malformed("a section table beyond the end of the file")
        return struct.unpack(entry, data)

    first = raw(0)
    if shnum == 0:  # extended numbering: the count is in section 0
        shnum = first[5]
    if shstrndx == 0xFFFF:
        shstrndx = first[6]
    if not 0 < shnum <= MAX_SECTIONS or shoff + shnum * shentsize > size or shstrndx >= shnum:
        raise Malformed("a section table that does not fit the file")
    table = read(shoff, shnum * shentsize)
    rows = [struct.unpack_from(entry, table, i * shentsize) for i in range(shnum)]
    fields = [(r[0], r[1], r[3], r[4], r[5], r[6], r[9]) for r in rows]
    for _, kind, _, offset, length, _, _ in fields:
        if kind != SHT_NOBITS and length and offset + length > size:
            raise Malformed("a section beyond the end of the file")
    _, kind, _, offset, length, _, _ = fields[shstrndx]
    names = read(offset, length) if shstrndx else b""
    out = []
    for name, kind, addr, offset, length, link, entsize in fields:
        end = names.find(b"\0", name)
        if name and (name >= len(names) or end < 0):
            raise Malformed("a section name outside its string table")
        out.append(Section(names[name:end].decode("latin-1") if name else "", kind, addr, offset, length, link,
                           entsize))
    return out


def _section_problem(section: Section, e_type: int) -> str:
    kind, name = section.type, section.name
    if kind in REFUSED_TYPES:
        return f"a section of type {REFUSED_TYPES[kind]}"
    if kind in LLVM_TYPES and kind not in INERT_LLVM_TYPES:
        return f"a section of an LLVM type this check does not know ({kind:#x})"
    if name in REFUSED_NAMES:
        return f"a {name} section ({REFUSED_NAMES[name]})"
    prefix = next((p for p in REFUSED_NAME_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        return f"a {prefix}* section ({REFUSED_NAME_PREFIXES[prefix]})"
    if e_type == ET_REL and (kind == SHT_DYNAMIC or name in LINKED_ONLY_NAMES):
        return f"a {name or 'dynamic'} section, which only a linked program has"
    return ""


def _string(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        raise Malformed("a dynamic string outside its string table")
    return table[offset:end].decode("latin-1")


def _dynamic_problem(read: Reader, head: bytes, sections: list[Section]) -> str:
    """The dynamic entries of a shared object (ET_DYN), as ld.bfd (`.dynamic` by name) and lld (by type)
    read them; the program headers for PT_INTERP and for a PT_DYNAMIC that is not that section."""
    order, wide = _layout(head)
    phoff, = struct.unpack_from(order + ("Q" if wide else "I"), head, 0x20 if wide else 0x1C)
    phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36 if wide else 0x2A)
    dynamic = [s for s in sections if s.type == SHT_DYNAMIC or s.name == ".dynamic"]
    if len(dynamic) != 1 or dynamic[0].type != SHT_DYNAMIC or not 0 < dynamic[0].link < len(sections):
        raise Malformed("not exactly one dynamic section")
    dyn = dynamic[0]
    segment = order + ("IIQQQQQQ" if wide else "IIIIIIII")
    if phnum and phentsize != struct.calcsize(segment):
        raise Malformed("a program header table of an unexpected entry size")
    headers = read(phoff, phnum * phentsize)
    if len(headers) < phnum * phentsize:
        raise Malformed("a program header table beyond the end of the file")
    for i in range(phnum):
        row = struct.unpack_from(segment, headers, i * phentsize)
        p_type, p_offset, p_filesz = row[0], (row[2] if wide else row[1]), (row[5] if wide else row[4])
        if p_type == PT_INTERP:
            return "an executable (it has a PT_INTERP), not a shared library"
        if p_type == PT_DYNAMIC and not (p_offset == dyn.offset and p_filesz <= dyn.size):
            raise Malformed("a PT_DYNAMIC that is not its dynamic section")
    strtab = sections[dyn.link]
    if strtab.type != SHT_STRTAB:
        raise Malformed("a dynamic section whose string table is no string table")
    strings = read(strtab.offset, strtab.size)
    step = 16 if wide else 8
    entries = read(dyn.offset, dyn.size - dyn.size % step)
    for i in range(0, len(entries), step):
        tag, value = struct.unpack_from(order + ("qQ" if wide else "iI"), entries, i)
        if tag in REFUSED_TAGS:
            return f"a shared object with {REFUSED_TAGS[tag]}"
        if tag == DT_STRTAB and value != strtab.addr:
            raise Malformed("a DT_STRTAB that is not its dynamic section's string table")
        if tag in (DT_NEEDED, DT_SONAME):
            name = _string(strings, value)
            if not LIBRARY_NAME.fullmatch(name):
                what = "DT_NEEDED" if tag == DT_NEEDED else "DT_SONAME"
                return (f"a shared object whose {what} is no plain library name (lib*.so*: never a path "
                        "or `$ORIGIN`)")
    return ""


def contents_problem(read: Reader, size: int, head: bytes, e_type: int) -> str:
    """"" when nothing in the ELF file (`head`: its first 64 bytes, identity already checked) makes the
    linker or the linked program read, load or run another file; else what does, e.g.
    "a section of type SHT_LLVM_DEPENDENT_LIBRARIES (...)" or "a malformed ELF file (...)"."""
    try:
        sections = _sections(read, size, head)
        for section in sections:
            problem = _section_problem(section, e_type)
            if problem:
                return f"an ELF file with {problem}"
        return _dynamic_problem(read, head, sections) if e_type == ET_DYN else ""
    except (Malformed, struct.error) as err:
        return f"a malformed ELF file ({err})" if isinstance(err, Malformed) else "a malformed ELF file"
