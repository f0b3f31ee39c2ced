"""Directives that would drive native tools (fixtures/hostile-directives, one cargo feature per attack):
rustc-env names of the class tools read, libraries and search paths in OUT_DIR that are not linker inputs
of the host's format, crate search paths into OUT_DIR, rerun-if-env-changed of a secret. Each must end in
its specific `cratecage:` denial with the canary's token in no output and no file of the target dir, and
nothing written outside it; each has a harmless twin that builds (and runs)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, own_lines

pytestmark = pytest.mark.integration

CRATE = "cratecage: build script of hostile-directives 0.1.0: "
ENV = CRATE + "directives denied: cargo:rustc-env="
READS = "rustc, the linker or a program they start reads this variable: "
LINKER_READS = "the linker would read libevil.a there, which is "


@dataclass(frozen=True)
class Attack:
    feature: str
    ok: bool  # does the build succeed?
    expect: tuple[str, ...]  # substrings of cargo's stderr


# Linker inputs with a good header whose contents make the linker read other files (shim/confine/elfcheck.py).
DEPLIBS = "an ELF file with a section of type SHT_LLVM_DEPENDENT_LIBRARIES"
CONTENTS = [("deplibs-object", "evil.o", DEPLIBS),
            ("deplibs-archive", "libevil.a", "an archive with a member that is " + DEPLIBS),
            ("linker-options", "libevil.a", "an archive with a member that is an ELF file with a section of type "
                                            "SHT_LLVM_LINKER_OPTIONS"),
            ("bitcode-member", "libevil.a", "an archive with an LLVM bitcode member"),
            ("runpath-shared", "libevil.so", "a shared object with DT_RUNPATH"),
            ("needed-path-shared", "libevil.so.1", "a shared object whose DT_NEEDED is no plain library name")]

ATTACKS = [
    Attack("env-llvm-symbolizer", False, (ENV + "LLVM_SYMBOLIZER_PATH=", READS + "`LLVM_*` is read by LLVM")),
    Attack("env-lld-reproduce", False, (ENV.replace("cargo:", "cargo::") + "LLD_REPRODUCE=", READS + "`LLD_*` is read by lld",
                                        '"rustc-env=LLD_REPRODUCE"')),
    Attack("env-lowercase", False, (ENV + "lld_reproduce=", ENV + "Llvm_Profile_File=")),
    Attack("env-path-shape", False, (ENV + "WIDGET_SEARCH_PATH=", READS + "names with the word PATH",
                                     ENV + "FOO_PLUGIN_DIR=")),
    Attack("env-proxy", False, (ENV + "https_proxy=", ENV + "ALL_PROXY=", "names with the word PROXY")),
    Attack("env-twin", True, ()),
    *(Attack(f"script-{kind}", False, (CRATE + "directives denied: cargo:rustc-link-search=native=",
                                       LINKER_READS + "not an archive, object or shared object",
                                       CRATE + "directives denied: cargo:rustc-link-lib=static=evil: a search path "
                                               "the script printed (", "holds a library of this name"))
      for kind in ("input", "group", "include")),
    Attack("planted-libc", False, ("the linker would read libc.so there, which is not an archive",)),
    Attack("thin-archive", False, (LINKER_READS + "a thin archive",)),
    Attack("foreign-object", False, (LINKER_READS + "an archive with a member that is an ELF file for another "
                                                    "machine",)),
    *(Attack(feature, False, (CRATE + "directives denied: cargo:rustc-link-search=native=",
                              f"the linker would read {planted} there, which is {what}",
                              CRATE + "directives denied: cargo:rustc-link-lib="))
      for feature, planted, what in CONTENTS),
    Attack("object-twin", True, ()),
    Attack("crate-search", False, ("directives denied: cargo:rustc-link-search=crate=",
                                   "`crate=` makes rustc look for crates there",
                                   "directives denied: cargo:rustc-link-search=dependency=",
                                   "`dependency=` makes rustc look for crates there")),
    Attack("static-twin", True, ()),
    Attack("rename-script", False, (CRATE + "directives denied: cargo:rustc-link-lib=static=evil::evil.txt: renames "
                                            "the library", "cargo::rustc-link-lib=evil:sub/../evil: renames",
                                    "cargo:rustc-link-lib=static:-bundle=evil::")),
    Attack("rerun-secret", True, (CRATE + "env-access not granted: HOSTILE_DIRECTIVES_SECRET: the build script "
                                          "may not see this variable",
                                  'vars = ["HOSTILE_DIRECTIVES_SECRET"]', "env-access not granted: Aws_Secret")),
    Attack("rerun-twin", True, ()),
]


@pytest.fixture(scope="module")
def arena(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A copy of the package with its native inputs built by the host's cc and ar, a canary file it must
    never get read, and an empty directory outside everything that must stay empty."""
    root = tmp_path_factory.mktemp(f"hostile-directives-{cargo.layout}")
    package = root / "pkg"
    shutil.copytree(FIXTURES / "hostile-directives", package)
    token = "CANARY" + secrets.token_hex(12)
    canary = root / "secret" / "id_rsa"
    canary.parent.mkdir()
    canary.write_text(token + "\n")
    outside = root / "outside"
    outside.mkdir()
    (package / "canary-path.txt").write_text(f"{canary}\n")
    (package / "outside-path.txt").write_text(f"{outside}\n")
    native = package / "native"
    native.mkdir()
    subprocess.run(["cc", "-c", "-fPIC", "../native-answer.c", "-o", "answer.o"], cwd=native, check=True)
    subprocess.run(["ar", "rcs", "libanswer.a", "answer.o"], cwd=native, check=True)
    subprocess.run(["ar", "rcsT", "libthin.a", str(canary)], cwd=native, check=True)
    foreign = bytearray((native / "answer.o").read_bytes())
    foreign[18:20] = (183 if foreign[18] != 183 else 62).to_bytes(2, "little")  # aarch64 (or x86-64)
    (native / "foreign.o").write_bytes(bytes(foreign))
    subprocess.run(["ar", "rcs", "libforeign.a", "foreign.o"], cwd=native, check=True)
    _contents(native, canary)
    return {"package": package, "outside": outside, "token": token,
            "files": sorted(str(p.relative_to(package)) for p in package.rglob("*"))}


def _contents(native: Path, canary: Path) -> None:
    """Objects whose sections or dynamic entries name the canary (built with llvm-mc, rustc, cc, ar)."""
    def sh(*argv: str) -> None:
        subprocess.run(list(argv), cwd=native, check=True, capture_output=True)

    code = ".text\n.globl answer\nanswer:\n movl $42, %eax\n ret\n.section .note.GNU-stack,\"\",@progbits\n"
    (native / "deplibs.s").write_text(f'.section .deplibs,"MS",@llvm_dependent_libraries,1\n.asciz "{canary}"\n'
                                      + code)
    (native / "options.s").write_text('.section .linker-options,"e",@llvm_linker_options\n'
                                      f'.asciz "--script={canary}"\n.asciz ""\n' + code)
    (native / "bc.rs").write_text("#![no_std]\n#[no_mangle]\npub extern \"C\" fn answer() -> i32 { 42 }\n")
    sh("llvm-mc", "-triple=x86_64-linux-gnu", "-filetype=obj", "deplibs.s", "-o", "deplibs.o")
    sh("llvm-mc", "-triple=x86_64-linux-gnu", "-filetype=obj", "options.s", "-o", "options.o")
    sh("rustc", "--crate-type=lib", "--emit=llvm-bc", "-o", "bitcode.o", "bc.rs")
    sh("ar", "rcs", "libdeplibs.a", "deplibs.o")
    sh("ar", "rcs", "liblinker-options.a", "options.o")
    sh("ar", "rcs", "libbitcode.a", "bitcode.o")
    sh("cc", "-shared", "answer.o", f"-Wl,-rpath,{canary.parent}", "-o", "librunpath.so")
    sh("cc", "-shared", "answer.o", "-o", "libnosoname.so")
    sh("cc", "-shared", "answer.o", "-Wl,--no-as-needed", str(native / "libnosoname.so"), "-o", "libneeded-path.so")


def build(cargo: Cargo, arena: dict, target: Path, feature: str) -> CargoRun:
    env = {"HOSTILE_DIRECTIVES_SECRET": arena["token"], "Aws_Secret_Access_Key": arena["token"]}
    return cargo(arena["package"], "build", "--features", feature, wrapped=True, target_dir=target,
                 extra_env=env, check=False)


def files_of(target: Path) -> bytes:
    data = b""
    for path in target.rglob("*") if target.exists() else []:
        if path.is_file() and not path.is_symlink() and path.stat().st_size < (16 << 20):
            data += path.read_bytes()
    return data


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.feature for a in ATTACKS])
def test_attack(cargo: Cargo, arena: dict, targets: Path, attack: Attack) -> None:
    target = targets / "hostile-directives"
    run = build(cargo, arena, target, attack.feature)
    stderr = run.proc.stderr
    assert run.ok == attack.ok, stderr[-4000:]
    for text in attack.expect:
        assert text in stderr, stderr[-4000:]
    assert "Traceback" not in stderr
    token = arena["token"]
    assert token not in stderr and token not in run.proc.stdout
    assert token.encode() not in files_of(target)
    assert list(arena["outside"].iterdir()) == []
    assert sorted(str(p.relative_to(arena["package"])) for p in arena["package"].rglob("*")) == arena["files"]
    if not attack.ok:
        assert any("denied" in line for line in own_lines(stderr))
    else:
        assert not any("denied" in line for line in own_lines(stderr))


@pytest.mark.parametrize("feature, says", [("env-twin", "version 1.2.3-twin+0123abc answer 0"),
                                           ("static-twin", "version none answer 42"),
                                           ("object-twin", "version none answer 42")])
def test_the_twins_build_and_run(cargo: Cargo, arena: dict, targets: Path, feature: str, says: str) -> None:
    target = targets / "hostile-directives"
    run = build(cargo, arena, target, feature)
    assert run.ok, run.proc.stderr[-4000:]
    out = subprocess.run([str(target / "debug" / "hostile-directives")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == says


def check_clean(run: CargoRun, arena: dict, target: Path) -> None:
    token = arena["token"]
    assert "Traceback" not in run.proc.stderr
    assert token not in run.proc.stderr and token not in run.proc.stdout
    assert token.encode() not in files_of(target)
    assert list(arena["outside"].iterdir()) == []


@pytest.mark.parametrize("feature, planted, what", CONTENTS[:2], ids=[c[0] for c in CONTENTS[:2]])
def test_doctests_which_rustdoc_links_unwrapped_never_see_a_planted_object(
        cargo: Cargo, arena: dict, targets: Path, feature: str, planted: str, what: str) -> None:
    """red1 deplibs-doctest: rustdoc links doctests natively with the crate's `-L native=OUT_DIR`, so the
    directive filter (not Landlock) is what keeps the planted object out of that link."""
    target = targets / "hostile-directives-doc"
    run = cargo(arena["package"], "test", "--doc", "--features", feature, wrapped=True, target_dir=target,
                check=False)
    assert not run.ok
    assert f"the linker would read {planted} there, which is {what}" in run.proc.stderr, run.proc.stderr[-4000:]
    assert CRATE + "directives denied: cargo:rustc-link-search=native=" in run.proc.stderr
    check_clean(run, arena, target)


def test_the_object_twin_passes_its_doctest(cargo: Cargo, arena: dict, targets: Path) -> None:
    target = targets / "hostile-directives-doc"
    run = cargo(arena["package"], "test", "--doc", "--features", "object-twin", wrapped=True, target_dir=target,
                check=False)
    assert run.ok, run.proc.stderr[-4000:]
    assert "1 passed" in run.proc.stdout and not any("denied" in line for line in own_lines(run.proc.stderr))
    check_clean(run, arena, target)
