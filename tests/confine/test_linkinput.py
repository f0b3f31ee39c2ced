"""Linker inputs judged by their bytes (shim/confine/linkinput.py), and the OUT_DIR search directories and libraries
that the directive filter keeps because of it (shim/build/directives.py). Real objects, archives and shared
objects are built with the host's `cc` and `ar` at test time."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.build.directives import filter
from shim.confine import linkinput

SCRIPTS = {  # GNU linker scripts, as ld, gold and lld accept them under any library name
    "input": b"INPUT(/etc/hostname)\n",
    "group": b"/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 /etc/hostname )\n",
    "include": b"INCLUDE /etc/hostname\n",
    "search-dir": b"SEARCH_DIR(/root); INPUT(-lsecret)\n",
    "output": b"OUTPUT_FORMAT(elf64-x86-64)\nOUTPUT(/tmp/x)\n",
    "blank": b"",
    "leading-space": b"   \n\tINPUT(/etc/hostname)\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A host object, a static archive of it (GNU long names too), a shared object, a thin archive."""
    d = tmp_path_factory.mktemp("linkinput")
    (d / "answer.c").write_text("int answer(void) { return 42; }\n")
    cc, ar = shutil.which("cc"), shutil.which("ar")
    assert cc and ar, "the tests need the host's cc and ar"
    subprocess.run([cc, "-c", "-fPIC", "answer.c", "-o", "answer.o"], cwd=d, check=True)
    shutil.copy(d / "answer.o", d / "a_member_name_longer_than_sixteen_bytes.o")
    subprocess.run([ar, "rcs", "libanswer.a", "answer.o", "a_member_name_longer_than_sixteen_bytes.o"], cwd=d,
                   check=True)
    subprocess.run([ar, "rcsT", "libthin.a", "answer.o"], cwd=d, check=True)
    subprocess.run([cc, "-shared", "answer.o", "-o", "libanswer.so"], cwd=d, check=True)
    foreign = bytearray((d / "answer.o").read_bytes())
    foreign[18:20] = (183 if foreign[18:20] != (183).to_bytes(2, "little") else 62).to_bytes(2, "little")
    (d / "foreign.o").write_bytes(bytes(foreign))
    subprocess.run([ar, "rcs", "libforeign.a", "foreign.o"], cwd=d, check=True)
    return {p.name: p for p in d.iterdir()}


@pytest.mark.parametrize("name", ["answer.o", "libanswer.a", "libanswer.so"])
def test_host_objects_archives_and_shared_objects_pass(built: dict[str, Path], name: str) -> None:
    assert linkinput.problem(str(built[name])) == ""


@pytest.mark.parametrize("name, what", [
    ("libthin.a", "a thin archive"),
    ("foreign.o", "an ELF file for another machine"),
    ("libforeign.a", "an archive with a member that is an ELF file for another machine"),
    ("answer.c", "not an archive, object or shared object"),
])
def test_other_files_are_refused_for_what_they_are(built: dict[str, Path], name: str, what: str) -> None:
    assert linkinput.problem(str(built[name])).startswith(what)


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=list(SCRIPTS))
def test_linker_scripts_are_refused(tmp_path: Path, script: bytes) -> None:
    (tmp_path / "libc.so").write_bytes(script)
    assert linkinput.problem(str(tmp_path / "libc.so")).startswith("not an archive, object or shared object")


def test_an_archive_hiding_a_script_member_or_a_lying_header_is_refused(tmp_path: Path,
                                                                        built: dict[str, Path]) -> None:
    member = SCRIPTS["input"]
    header = f"{'evil.o/':<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(member):<10}`\n".encode()
    (tmp_path / "liba.a").write_bytes(b"!<arch>\n" + header + member)
    assert linkinput.problem(str(tmp_path / "liba.a")).startswith("an archive with a member that is no ELF")
    good = built["libanswer.a"].read_bytes()
    (tmp_path / "libb.a").write_bytes(good[:-10])  # a member longer than the file
    assert linkinput.problem(str(tmp_path / "libb.a")) == "a malformed archive"
    (tmp_path / "libc.a").write_bytes(b"!<arch>\n")  # no members at all: nothing for the linker to read
    assert linkinput.problem(str(tmp_path / "libc.a")) == ""


def _archive(*members: tuple[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) & 1)
    return out


@pytest.mark.parametrize("name", ["/", "//", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED"])
def test_a_bookkeeping_name_after_the_first_members_is_an_ordinary_member(tmp_path: Path, built: dict[str, Path],
                                                                          name: str) -> None:
    """lld reads only a leading symbol table (and the `//` name table after it) as bookkeeping: a later
    member named `/` is linked like any other, so it is judged like any other (red team 6)."""
    obj = built["answer.o"].read_bytes()
    (tmp_path / "liba.a").write_bytes(_archive(("ok.o/", obj), (name, SCRIPTS["input"])))
    assert linkinput.problem(str(tmp_path / "liba.a")).startswith("an archive with a member that is no ELF")
    (tmp_path / "libb.a").write_bytes(_archive(("ok.o/", obj), (name, obj)))
    assert linkinput.problem(str(tmp_path / "libb.a")) == ""  # a host object under that name is still one


@pytest.mark.parametrize("members", [[("/", b"\0\0\0\0")], [("/", b"\0\0\0\0"), ("//", b"long_name.o/\n")],
                                     [("//", b"long_name.o/\n")], [("/SYM64/", b"\0" * 8)]])
def test_leading_symbol_and_name_tables_are_bookkeeping(tmp_path: Path, built: dict[str, Path],
                                                        members: list[tuple[str, bytes]]) -> None:
    (tmp_path / "liba.a").write_bytes(_archive(*members, ("ok.o/", built["answer.o"].read_bytes())))
    assert linkinput.problem(str(tmp_path / "liba.a")) == ""


def test_fifos_and_directories_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "libfifo.a")
    (tmp_path / "libdir.so").mkdir()
    assert linkinput.problem(str(tmp_path / "libfifo.a")) == "not a regular file"
    assert linkinput.problem(str(tmp_path / "libdir.so")) == "not a regular file"


# --- what the directive filter makes of it ------------------------------------------------------------------

def run(stdout: str, out: Path) -> tuple[list[str], list[tuple[str, str]]]:
    kept, denied = filter(stdout, out_dir=str(out), grant_allows_directive=lambda k, t: False)
    return kept, [(d.canonical or d.raw, reason) for d, reason in denied]


@pytest.mark.parametrize("planted", ["libc.so", "libgcc_s.so", "libm.a", "libutil.so.1", "libfoo.a"])
@pytest.mark.parametrize("script", ["input", "group", "include"])
def test_a_search_dir_with_any_script_the_linker_could_find_is_refused(tmp_path: Path, planted: str,
                                                                       script: str) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / planted).write_bytes(SCRIPTS[script])
    kept, denied = run(f"cargo:rustc-link-search=native={tmp_path}/lib\n", tmp_path)
    assert kept == [] and len(denied) == 1
    assert denied[0][1].startswith(f"the linker would read {planted} there, which is not an archive")


def test_files_no_l_can_open_do_not_matter_and_good_libraries_pass(tmp_path: Path, built: dict[str, Path]) -> None:
    shutil.copy(built["libanswer.a"], tmp_path / "libanswer.a")
    shutil.copy(built["libanswer.so"], tmp_path / "libshared.so")
    (tmp_path / "notes.txt").write_bytes(SCRIPTS["input"])
    (tmp_path / "answer.ld").write_bytes(SCRIPTS["input"])
    stdout = (f"cargo:rustc-link-search={tmp_path}\ncargo:rustc-link-lib=static=answer\n"
              "cargo:rustc-link-lib=shared\ncargo:rustc-link-lib=dylib=answer\n")
    kept, denied = run(stdout, tmp_path)
    assert kept == [f"cargo:rustc-link-search=native={tmp_path}", "cargo:rustc-link-lib=static=answer",
                    "cargo:rustc-link-lib=shared"]
    assert [line for line, _ in denied] == ["cargo:rustc-link-lib=dylib=answer"]  # no libanswer.so


def test_a_verbatim_library_is_judged_by_its_bytes_too(tmp_path: Path, built: dict[str, Path]) -> None:
    shutil.copy(built["answer.o"], tmp_path / "answer.o")
    kept, denied = run(f"cargo:rustc-link-lib=static:+verbatim=answer.o\ncargo:rustc-link-search={tmp_path}\n",
                       tmp_path)
    assert kept == ["cargo:rustc-link-lib=static:+verbatim=answer.o", f"cargo:rustc-link-search=native={tmp_path}"]
    (tmp_path / "answer.o").write_bytes(SCRIPTS["group"])
    kept, denied = run(f"cargo:rustc-link-lib=static:+verbatim=answer.o\ncargo:rustc-link-search={tmp_path}\n",
                       tmp_path)
    assert kept == [] and [line for line, _ in denied] == [
        "cargo:rustc-link-lib=static:+verbatim=answer.o", f"cargo:rustc-link-search=native={tmp_path}"]


@pytest.mark.parametrize("name", ["libthin.a", "libforeign.a", "foreign.o"])
def test_thin_and_foreign_libraries_are_refused(tmp_path: Path, built: dict[str, Path], name: str) -> None:
    target = "libx.a" if name.endswith(".a") else "libx.so"
    shutil.copy(built[name], tmp_path / target)
    kept, denied = run(f"cargo:rustc-link-search=native={tmp_path}\ncargo:rustc-link-lib=x\n", tmp_path)
    assert kept == [] and len(denied) == 2


# --- cross-compiling: the target's ELF identity -------------------------------------------------------------

IDENTITIES = [  # cargo's TARGET -> (EI_CLASS, EI_DATA, e_machine) of its objects
    ("x86_64-unknown-linux-gnu", (2, 1, 62)), ("x86_64-unknown-linux-musl", (2, 1, 62)),
    ("x86_64-unknown-linux-gnux32", (1, 1, 62)), ("x86_64-unknown-freebsd", (2, 1, 62)),
    ("i686-unknown-linux-gnu", (1, 1, 3)), ("i586-unknown-linux-musl", (1, 1, 3)), ("i386-unknown-none", (1, 1, 3)),
    ("aarch64-unknown-linux-gnu", (2, 1, 183)), ("aarch64-linux-android", (2, 1, 183)),
    ("aarch64_be-unknown-linux-gnu", (2, 2, 183)), ("aarch64-unknown-linux-gnu_ilp32", (1, 1, 183)),
    ("arm-unknown-linux-gnueabihf", (1, 1, 40)), ("armv7-unknown-linux-gnueabihf", (1, 1, 40)),
    ("armv5te-unknown-linux-musleabi", (1, 1, 40)), ("thumbv7neon-unknown-linux-gnueabihf", (1, 1, 40)),
    ("thumbv7em-none-eabihf", (1, 1, 40)), ("armebv7r-none-eabi", (1, 2, 40)),
    ("riscv64gc-unknown-linux-gnu", (2, 1, 243)), ("riscv32imac-unknown-none-elf", (1, 1, 243)),
    ("powerpc-unknown-linux-gnu", (1, 2, 20)), ("powerpc64-unknown-linux-gnu", (2, 2, 21)),
    ("powerpc64le-unknown-linux-gnu", (2, 1, 21)), ("s390x-unknown-linux-gnu", (2, 2, 22)),
    ("mips-unknown-linux-gnu", (1, 2, 8)), ("mipsel-unknown-linux-musl", (1, 1, 8)),
    ("mips64-unknown-linux-gnuabi64", (2, 2, 8)), ("mips64el-unknown-linux-gnuabi64", (2, 1, 8)),
    ("mipsisa32r6el-unknown-linux-gnu", (1, 1, 8)), ("mipsisa64r6-unknown-linux-gnuabi64", (2, 2, 8)),
    ("loongarch64-unknown-linux-gnu", (2, 1, 258)), ("sparc64-unknown-linux-gnu", (2, 2, 43)),
    ("sparcv9-sun-solaris", (2, 2, 43)),
]
NOT_ELF_TARGETS = ["wasm32-wasip1", "wasm32-unknown-unknown", "wasm64-unknown-unknown", "x86_64-pc-windows-gnu",
                   "x86_64-pc-windows-msvc", "aarch64-apple-darwin", "x86_64-apple-ios", "aarch64-apple-visionos",
                   "x86_64-unknown-uefi", "arm64ec-pc-windows-msvc", "avr-unknown-gnu-atmega328", "bpfel-unknown-none",
                   "nvptx64-nvidia-cuda", "m68k-unknown-linux-gnu", "hexagon-unknown-linux-musl", "my-custom-spec",
                   "x86_64", "powerpc64lx-unknown-linux-gnu", "armx-unknown-linux-gnueabi",
                   "csky-unknown-linux-gnuabiv2"]


@pytest.mark.parametrize("triple, identity", IDENTITIES, ids=[t for t, _ in IDENTITIES])
def test_each_target_family_has_its_elf_identity(triple: str, identity: tuple[int, int, int]) -> None:
    assert linkinput.elf_identity(triple) == identity


@pytest.mark.parametrize("triple", NOT_ELF_TARGETS)
def test_targets_without_elf_objects_or_unknown_accept_no_library(triple: str) -> None:
    assert linkinput.elf_identity(triple) == linkinput.NOT_ELF


def test_no_target_means_the_host() -> None:
    assert linkinput.elf_identity("") == linkinput.host_elf() != linkinput.NOT_ELF


CROSS = [  # llvm-mc triple -> the cargo TARGET its objects are for
    ("aarch64-linux-gnu", "aarch64-unknown-linux-gnu"), ("aarch64_be-linux-gnu", "aarch64_be-unknown-linux-gnu"),
    ("armv7-linux-gnueabihf", "armv7-unknown-linux-gnueabihf"),
    ("thumbv7-linux-gnueabihf", "thumbv7neon-unknown-linux-gnueabihf"),
    ("armebv7r-none-eabi", "armebv7r-none-eabi"), ("riscv64-linux-gnu", "riscv64gc-unknown-linux-gnu"),
    ("riscv32-unknown-elf", "riscv32imac-unknown-none-elf"), ("powerpc-linux-gnu", "powerpc-unknown-linux-gnu"),
    ("powerpc64-linux-gnu", "powerpc64-unknown-linux-gnu"),
    ("powerpc64le-linux-gnu", "powerpc64le-unknown-linux-gnu"),
    ("s390x-linux-gnu", "s390x-unknown-linux-gnu"), ("mips-linux-gnu", "mips-unknown-linux-gnu"),
    ("mipsel-linux-gnu", "mipsel-unknown-linux-musl"),
    ("mips64el-linux-gnuabi64", "mips64el-unknown-linux-gnuabi64"),
    ("i686-linux-gnu", "i686-unknown-linux-gnu"), ("sparcv9-linux-gnu", "sparc64-unknown-linux-gnu"),
    ("x86_64-linux-gnux32", "x86_64-unknown-linux-gnux32"),
]
DEPLIBS = '.section .deplibs,"MS",%llvm_dependent_libraries,1\n.asciz "/nonexistent/canary"\n'


@pytest.mark.parametrize("mc_triple, target", CROSS, ids=[t for _, t in CROSS])
def test_a_cross_target_accepts_its_own_objects_and_refuses_the_rest(tmp_path: Path, mc_triple: str,
                                                                     target: str) -> None:
    assert shutil.which("llvm-mc"), "the tests need llvm-mc"
    for name, text in (("plain", ".text\n.byte 0\n"), ("deplibs", DEPLIBS + ".text\n.byte 0\n")):
        (tmp_path / f"{name}.s").write_text(text)
        subprocess.run(["llvm-mc", f"-triple={mc_triple}", "-filetype=obj", f"{name}.s", "-o", f"{name}.o"],
                       cwd=tmp_path, check=True)
    subprocess.run(["ar", "rcs", "libplain.a", "plain.o"], cwd=tmp_path, check=True)
    assert linkinput.problem(str(tmp_path / "plain.o"), target) == ""
    assert linkinput.problem(str(tmp_path / "libplain.a"), target) == ""
    assert linkinput.problem(str(tmp_path / "deplibs.o"), target).startswith(
        "an ELF file with a section of type SHT_LLVM_DEPENDENT_LIBRARIES")
    for other in ("wasm32-wasip1", "x86_64-pc-windows-gnu", "m68k-unknown-linux-gnu",
                  "x86_64-unknown-linux-gnu" if not target.startswith("x86_64-") else "aarch64-unknown-linux-gnu"):
        assert linkinput.problem(str(tmp_path / "plain.o"), other) == "an ELF file for another machine"


def test_the_directive_filter_judges_libraries_for_cargos_target(tmp_path: Path) -> None:
    (tmp_path / "a.s").write_text(".text\n.byte 0\n")
    subprocess.run(["llvm-mc", "-triple=aarch64-linux-gnu", "-filetype=obj", "a.s", "-o", "a.o"], cwd=tmp_path,
                   check=True)
    subprocess.run(["ar", "rcs", "libcross.a", "a.o"], cwd=tmp_path, check=True)
    stdout = f"cargo:rustc-link-search=native={tmp_path}\ncargo:rustc-link-lib=static=cross\n"
    kept, denied = filter(stdout, out_dir=str(tmp_path), grant_allows_directive=lambda k, t: False,
                          target="aarch64-unknown-linux-gnu")
    assert denied == [] and len(kept) == 2
    kept, denied = filter(stdout, out_dir=str(tmp_path), grant_allows_directive=lambda k, t: False,
                          target="riscv64gc-unknown-linux-gnu")
    assert kept == [] and denied[0][1] == "the linker would read libcross.a there, which is an archive with a " \
                                          "member that is an ELF file for another machine"


# --- Windows import libraries (the windows_* crates ship them in their package's lib/) ----------------------

WINDOWS = "x86_64-pc-windows-gnu"


def coff_object(*sections: bytes, machine: int = 0x8664, optional: int = 0) -> bytes:
    """A COFF object with these sections, 4 bytes of raw data each, no symbols (what an import thunk is made of)."""
    import struct

    table_end = 20 + optional + 40 * len(sections)
    head = struct.pack("<HHIIIHH", machine, len(sections), 0, 0, 0, optional, 0) + b"\0" * optional
    table = b"".join(struct.pack("<8sIIIIIIHHI", name, 0, 0, 4, table_end + 4 * i, 0, 0, 0, 0, 0x60000020)
                     for i, name in enumerate(sections))
    return head + table + b"\xc3\0\0\0" * len(sections)


def import_record(machine: int = 0x8664, version: int = 0, names: bytes = b"AbortDoc\0gdi32.dll\0") -> bytes:
    """A short import record (IMPORT_OBJECT_HEADER, then the symbol's and the DLL's names)."""
    import struct

    return struct.pack("<HHHHIIHH", 0, 0xFFFF, version, machine, 0, len(names), 0, 0) + names


@pytest.mark.parametrize("members", [
    [coff_object(b".text", b".idata$5", b".idata$4", b".idata$6")],  # windows_x86_64_gnu's, as dlltool makes
    [coff_object(b".idata$2", b".idata$3", machine=0xAA64), import_record(0xAA64)],  # llvm-dlltool's (gnullvm)
    [coff_object(b".text", b".idata$7", machine=0x014C)],  # windows_i686_gnu's
])
def test_an_archive_of_windows_import_objects_passes_where_it_can_mean_something(tmp_path: Path,
                                                                                  members: list[bytes]) -> None:
    (tmp_path / "libwindows.0.52.0.a").write_bytes(_archive(("/", b"\0\0\0\0"),
                                                           *((f"m{i}.o/", m) for i, m in enumerate(members))))
    path = str(tmp_path / "libwindows.0.52.0.a")
    assert linkinput.problem(path, "x86_64-pc-windows-gnu") == ""
    assert linkinput.problem(path, imports=True) == ""  # a package's own lib/ (shim.build.directives decides)


@pytest.mark.parametrize("target", ["", "x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "wasm32-wasip1"])
def test_an_archive_of_windows_import_objects_is_no_library_of_another_target(tmp_path: Path, target: str) -> None:
    """GNU ld crashes on an import object it pulls into an ELF link (a BFD assertion, then SIGSEGV): only a
    Windows target links one, so elsewhere it is refused unless the caller says it is shipped."""
    (tmp_path / "libimp.a").write_bytes(_archive(("m.o/", coff_object(b".text", b".idata$5")),
                                                 ("r.o/", import_record())))
    problem = linkinput.problem(str(tmp_path / "libimp.a"), target)
    assert problem.startswith("an archive with a member that is a Windows import object"), problem
    assert linkinput.windows_target("aarch64-pc-windows-msvc") and not linkinput.windows_target(target)


@pytest.mark.parametrize("member, what", [
    (coff_object(b".text", b".drectve"), "section '.drectve'"),  # linker flags (`-defaultlib:`, `/include:`)
    (coff_object(b".text", b".gnu.lto"), "section '.gnu.lto'"),  # LTO IR would wake ld.bfd's plugin
    (coff_object(b".text", b"/4"), "section '/4'"),  # a long name, kept in the string table: never judged
    (coff_object(b".text", optional=224), "a Windows image"),
    (coff_object(b".text")[:50], "a malformed Windows object"),
    (import_record(version=1), "unknown version or machine"),
    (import_record(machine=0x1234), "unknown version or machine"),
    (import_record()[:20], "a malformed Windows import record"),
    (coff_object(b".text", machine=0x1234), "no ELF file"),  # no Windows machine: judged as anything else
])
def test_a_windows_member_with_anything_more_is_refused(tmp_path: Path, member: bytes, what: str) -> None:
    good = coff_object(b".text", b".idata$5")
    (tmp_path / "libwindows.a").write_bytes(_archive(("good.o/", good), ("evil.o/", member)))
    problem = linkinput.problem(str(tmp_path / "libwindows.a"), WINDOWS)
    assert problem.startswith("an archive with a member that is") and what in problem, problem
    (tmp_path / "libwindows.a").write_bytes(_archive(("good.o/", good), ("good2.o/", good)))  # the twin
    assert linkinput.problem(str(tmp_path / "libwindows.a"), WINDOWS) == ""


def test_a_windows_object_alone_is_no_library(tmp_path: Path) -> None:
    """Only as archive members, as the windows_* crates ship them: a bare COFF file is not a linker input here."""
    (tmp_path / "libwindows.so").write_bytes(coff_object(b".text"))
    assert linkinput.problem(str(tmp_path / "libwindows.so")).startswith("not an archive, object or shared object")
