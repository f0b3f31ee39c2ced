"""What the linker does with an ELF file beyond its header (shim/confine/elfcheck.py, through shim/confine/linkinput.py):
real objects, archives and shared objects built at test time with the host's cc, as, ar, llvm-mc and
objcopy, each hostile one refused for what it makes the linker do, each harmless twin accepted."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from shim.confine import linkinput

CANARY = "/nonexistent-cratecage/canary.txt"
C_SOURCE = "int answer(void) { return 42; }\n"


def _sh(d: Path, *argv: str) -> None:
    subprocess.run(list(argv), cwd=d, check=True, capture_output=True)


def _asm(d: Path, name: str, text: str, *, llvm: bool = False) -> None:
    (d / f"{name}.s").write_text(text + ".text\n.globl f_" + name.replace("-", "_") + "\nf_" +
                                 name.replace("-", "_") + ":\n ret\n.section .note.GNU-stack,\"\",@progbits\n")
    if llvm:
        _sh(d, "llvm-mc", "-triple=x86_64-linux-gnu", "-filetype=obj", f"{name}.s", "-o", f"{name}.o")
    else:
        _sh(d, "as", f"{name}.s", "-o", f"{name}.o")


def _retag(path: Path, section: str, sh_type: int) -> None:
    """Give the section named `section` of an ELF64 little-endian object the type `sh_type`."""
    b = bytearray(path.read_bytes())
    shoff, = struct.unpack_from("<Q", b, 0x28)
    ent, num, strndx = struct.unpack_from("<HHH", b, 0x3A)
    stroff, = struct.unpack_from("<Q", b, shoff + strndx * ent + 0x18)
    for i in range(num):
        off = shoff + i * ent
        name, = struct.unpack_from("<I", b, off)
        if b[stroff + name:b.index(0, stroff + name)] == section.encode():
            struct.pack_into("<I", b, off + 4, sh_type)
    path.write_bytes(bytes(b))


def _patch(src: Path, dst: Path, offset: int, fmt: str, value: int) -> None:
    b = bytearray(src.read_bytes())
    struct.pack_into(fmt, b, offset, value)
    dst.write_bytes(bytes(b))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("elfcheck")
    (d / "answer.c").write_text(C_SOURCE)
    for tool in ("cc", "as", "ar", "llvm-mc", "objcopy", "rustc"):
        assert shutil.which(tool), f"the tests need {tool}"
    _sh(d, "cc", "-c", "-fPIC", "answer.c", "-o", "answer.o")
    _sh(d, "cc", "-c", "-fPIC", "-g", "-ffunction-sections", "-Wa,--compress-debug-sections", "answer.c",
        "-o", "debug.o")
    _sh(d, "cc", "-c", "-fsplit-stack", "answer.c", "-o", "split-stack.o")
    # hostile objects: the red team's `.deplibs`, and its variations of type, name and route
    _asm(d, "deplibs", f'.section .deplibs,"MS",@llvm_dependent_libraries,1\n.asciz "{CANARY}"\n', llvm=True)
    _asm(d, "deplibs-renamed", f'.section .rodata.str,"MS",@llvm_dependent_libraries,1\n.asciz "{CANARY}"\n',
         llvm=True)
    _asm(d, "deplibs-retagged", f'.section .deplibs,"MS",@progbits,1\n.asciz "{CANARY}"\n')
    shutil.copy(d / "deplibs-retagged.o", d / "deplibs-progbits.o")
    _retag(d / "deplibs-retagged.o", ".deplibs", 0x6FFF4C04)
    _asm(d, "linker-options", '.section .linker-options,"e",@llvm_linker_options\n.asciz "-L/root"\n.asciz ""\n',
         llvm=True)
    _asm(d, "llvm-unknown", '.section .rodata.x,"a",@progbits\n.byte 1\n')
    _retag(d / "llvm-unknown.o", ".rodata.x", 0x6FFF4C42)
    _asm(d, "addrsig", '.section .llvm_addrsig,"e",@progbits\n.byte 1\n')
    _retag(d / "addrsig.o", ".llvm_addrsig", 0x6FFF4C03)
    _asm(d, "linkonce", '.section .gnu.linkonce.t.answer,"ax",@progbits\n ret\n')
    _asm(d, "interp", f'.section .interp,"a",@progbits\n.asciz "{CANARY}"\n')
    _asm(d, "dynamic", '.section .dynamic,"aw",@dynamic\n.quad 1, 0\n')
    _asm(d, "dynamic-renamed", '.section .data.rel,"aw",@progbits\n.quad 15, 0\n')
    _retag(d / "dynamic-renamed.o", ".data.rel", 6)  # SHT_DYNAMIC
    _sh(d, "cc", "-c", "-flto", "answer.c", "-o", "gcc-lto.o")
    (d / "payload").write_bytes(b"BC\xc0\xde")
    _sh(d, "objcopy", "--add-section", ".llvm.lto=payload", "answer.o", "llvm-lto-name.o")
    _sh(d, "objcopy", "--add-section", ".gnu.lto_.opts=payload", "answer.o", "gnu-lto-added.o")
    (d / "bc.rs").write_text("#![no_std]\npub fn f() -> u32 { 42 }\n")
    _sh(d, "rustc", "--crate-type=lib", "--emit=llvm-bc", "-o", "bitcode.o", "bc.rs")
    for name in ("answer", "deplibs", "linker-options", "bitcode"):
        _sh(d, "ar", "rcs", f"lib{name}.a", "answer.o", f"{name}.o")
    # shared objects
    shared = {"plain": [], "soname": ["-Wl,-soname,libanswer.so.1"],
              "runpath": ["-Wl,--enable-new-dtags,-rpath,/root/.ssh"],
              "rpath": ["-Wl,--disable-new-dtags,-rpath,/root/.ssh"], "origin": ["-Wl,-rpath,$ORIGIN/../x"],
              "soname-path": [f"-Wl,-soname,{CANARY}"], "soname-origin": ["-Wl,-soname,$ORIGIN/libx.so"],
              "filter": ["-Wl,--filter=libc.so.6"], "auxiliary": ["-Wl,--auxiliary=libc.so.6"],
              "audit": [f"-Wl,--audit={CANARY}"], "depaudit": [f"-Wl,--depaudit={CANARY}"]}
    for name, flags in shared.items():
        _sh(d, "cc", "-shared", "answer.o", *flags, "-o", f"lib{name}.so")
    # libplain.so has no SONAME, so the DT_NEEDED naming it is the path it was linked by
    _sh(d, "cc", "-shared", "answer.o", "-Wl,--no-as-needed", f"{d}/libplain.so", "-o", "libneeded-path.so")
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    _sh(d, "cc", "-fPIE", "-pie", "main.c", "-o", "libpie.so")
    # malformed: each a real object with one table entry broken
    good = d / "answer.o"
    shoff, = struct.unpack_from("<Q", good.read_bytes(), 0x28)
    (d / "truncated.o").write_bytes(good.read_bytes()[:shoff + 10])
    _patch(good, d / "shoff-beyond.o", 0x28, "<Q", 1 << 40)
    _patch(good, d / "no-section-table.o", 0x28, "<Q", 0)
    _patch(good, d / "shentsize.o", 0x3A, "<H", 40)
    _patch(good, d / "shstrndx.o", 0x3E, "<H", 999)
    _patch(good, d / "section-name.o", shoff + 64, "<I", 1 << 30)  # section 1's name offset
    _patch(good, d / "section-beyond.o", shoff + 64 + 0x18, "<Q", 1 << 40)  # section 1's offset
    return d


PASS = ["answer.o", "debug.o", "split-stack.o", "addrsig.o", "linkonce.o", "libanswer.a", "libplain.so", "libsoname.so"]


@pytest.mark.parametrize("name", PASS)
def test_ordinary_objects_archives_and_shared_objects_pass(files: Path, name: str) -> None:
    assert linkinput.problem(str(files / name)) == ""


REFUSED = [
    ("deplibs.o", "an ELF file with a section of type SHT_LLVM_DEPENDENT_LIBRARIES"),
    ("deplibs-renamed.o", "an ELF file with a section of type SHT_LLVM_DEPENDENT_LIBRARIES"),
    ("deplibs-retagged.o", "an ELF file with a section of type SHT_LLVM_DEPENDENT_LIBRARIES"),
    ("deplibs-progbits.o", "an ELF file with a .deplibs section"),
    ("linker-options.o", "an ELF file with a section of type SHT_LLVM_LINKER_OPTIONS"),
    ("llvm-unknown.o", "an ELF file with a section of an LLVM type this check does not know (0x6fff4c42)"),
    ("interp.o", "an ELF file with a .interp section, which only a linked program has"),
    ("dynamic.o", "an ELF file with a .dynamic section, which only a linked program has"),
    ("dynamic-renamed.o", "an ELF file with a .data.rel section, which only a linked program has"),
    ("gcc-lto.o", "an ELF file with a .gnu.lto_* section"),
    ("gnu-lto-added.o", "an ELF file with a .gnu.lto_* section"),
    ("llvm-lto-name.o", "an ELF file with a .llvm.lto section"),
    ("bitcode.o", "LLVM bitcode"),
    ("libdeplibs.a", "an archive with a member that is an ELF file with a section of type "
                     "SHT_LLVM_DEPENDENT_LIBRARIES"),
    ("liblinker-options.a", "an archive with a member that is an ELF file with a section of type "
                            "SHT_LLVM_LINKER_OPTIONS"),
    ("libbitcode.a", "an archive with an LLVM bitcode member"),
    ("librunpath.so", "a shared object with DT_RUNPATH"),
    ("librpath.so", "a shared object with DT_R"),
    ("liborigin.so", "a shared object with DT_R"),
    ("libfilter.so", "a shared object with DT_FILTER"),
    ("libauxiliary.so", "a shared object with DT_AUXILIARY"),
    ("libaudit.so", "a shared object with DT_AUDIT"),
    ("libdepaudit.so", "a shared object with DT_DEPAUDIT"),
    ("libsoname-path.so", "a shared object whose DT_SONAME is no plain library name"),
    ("libsoname-origin.so", "a shared object whose DT_SONAME is no plain library name"),
    ("libneeded-path.so", "a shared object whose DT_NEEDED is no plain library name"),
    ("libpie.so", "an executable (it has a PT_INTERP)"),
    ("truncated.o", "a malformed ELF file"),
    ("shoff-beyond.o", "a malformed ELF file"),
    ("no-section-table.o", "a malformed ELF file (no section table)"),
    ("shentsize.o", "a malformed ELF file (a section table of an unexpected entry size)"),
    ("shstrndx.o", "a malformed ELF file (a section table that does not fit the file)"),
    ("section-name.o", "a malformed ELF file (a section name outside its string table)"),
    ("section-beyond.o", "a malformed ELF file (a section beyond the end of the file)"),
]


@pytest.mark.parametrize("name, what", REFUSED, ids=[r[0] for r in REFUSED])
def test_files_that_make_the_linker_read_other_files_are_refused(files: Path, name: str, what: str) -> None:
    assert linkinput.problem(str(files / name)).startswith(what)


def test_the_deplibs_canary_path_is_never_opened(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads the object it is given, not the paths inside it."""
    import os

    opened: list[str] = []
    real = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    linkinput.problem(str(files / "deplibs.o"))
    linkinput.problem(str(files / "libneeded-path.so"))
    assert all(CANARY not in p and "libplain" not in p for p in opened)
