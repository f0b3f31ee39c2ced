"""Linker inputs judged by their bytes (shim/linkinput.py), and the OUT_DIR search directories and libraries
that the directive filter keeps because of it (shim/directives.py). Real objects, archives and shared
objects are built with the host's `cc` and `ar` at test time."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shim import linkinput
from shim.directives import filter

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
