"""The checking linker of confined links (shim/confine/linkcheck.py): what a linker command line consumes, resolved as
GNU ld and lld resolve it, and which of those files are refused. Archives are built with the host's `cc` and
`ar`; the import archive is windows_x86_64_gnu-shaped (tests/confine/test_linkinput.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shim.confine import linkcheck

from test_linkinput import coff_object

FIXTURE_IMPORTS = Path(__file__).parents[2] / "fixtures" / "hostile-pkgdirs" / "coff-source" / "lib" / "libimp.a"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`good/` holds a host archive, `bad/` an import archive under a library name, another name, and a
    linker script; `rustcAbc/` stands for rustc's temporary directory in the output directory `out/`."""
    root = tmp_path_factory.mktemp("linkcheck")
    good, bad, out = root / "good", root / "bad", root / "out"
    for d in (good, bad, out / "rustcAbc"):
        d.mkdir(parents=True)
    (root / "a.c").write_text("int a(void) { return 1; }\n")
    subprocess.run([shutil.which("cc") or "cc", "-c", "a.c", "-o", "a.o"], cwd=root, check=True)
    subprocess.run([shutil.which("ar") or "ar", "rcs", str(good / "libgood.a"), "a.o"], cwd=root, check=True)
    for name in ("libimp.a", "imp.lib"):
        shutil.copy(FIXTURE_IMPORTS, bad / name)
        shutil.copy(FIXTURE_IMPORTS, out / "rustcAbc" / name)
    (bad / "libc.a").write_bytes(FIXTURE_IMPORTS.read_bytes())  # would answer rustc's own `-lc` first
    (bad / "script.ld").write_text("INPUT(/etc/hostname)\n")
    return {"root": root, "good": good, "bad": bad, "out": out}


def link(d: dict[str, Path], *words: str, search: tuple[str, ...] = ("good", "bad")) -> list[str]:
    """rustc's shape of a `cc` link: objects, `-l`s under -Bstatic/-Bdynamic, its own libraries, `-L`s last."""
    return ["-m64", "main.o", "-Wl,--as-needed", *words, "-Wl,-Bdynamic", "-lgcc_s", "-lc",
            *(w for s in search for w in ("-L", str(d[s]))), "-o", "out"]


@pytest.mark.parametrize("words", [
    ("-Wl,-Bstatic", "-lgood"),
    ("-lgood",),  # -Bdynamic: libgood.so first, then libgood.a, in each directory
    ("-Wl,-Bstatic", "-Wl,--whole-archive", "-l:libgood.a", "-Wl,--no-whole-archive"),
    ("-lz",),  # only in the system's directories
    ("-lnowhere",),  # the linker reports it
])
def test_a_link_of_checked_libraries_passes(dirs: dict[str, Path], words: tuple[str, ...]) -> None:
    assert linkcheck.problem(link(dirs, *words, search=("good",)), [str(dirs["good"])]) == ""


@pytest.mark.parametrize("words, refused", [
    (("-Wl,-Bstatic", "-limp"), "libimp.a"),  # a `#[link]` in the source
    (("-l:imp.lib",), "imp.lib"),  # `+verbatim`
    (("-Xlinker", "-Bstatic", "-Wl,--library=imp"), "libimp.a"),
    ((), "libc.a"),  # rustc's own `-lc` finds the package's file before the system's
])
def test_an_import_archive_reached_any_way_is_refused(dirs: dict[str, Path], words: tuple[str, ...],
                                                      refused: str) -> None:
    found = linkcheck.problem(link(dirs, *words), [str(dirs["good"]), str(dirs["bad"])])
    assert found.partition("\t")[0] == str(dirs["bad"] / refused)
    assert "Windows import object" in found


def test_a_script_under_a_verbatim_name_is_refused(dirs: dict[str, Path]) -> None:
    found = linkcheck.problem(link(dirs, "-l:script.ld"), [str(dirs["bad"])])
    assert found.startswith(f"{dirs['bad'] / 'script.ld'}\t") and "linker script" in found


@pytest.mark.parametrize("name", [":../bad/imp.lib", ":sub/x.a", "../x"])
def test_a_library_named_by_a_path_is_refused(dirs: dict[str, Path], name: str) -> None:
    assert "names a library by a path" in linkcheck.problem(link(dirs, f"-l{name}"), [str(dirs["good"])])


def test_a_file_rustc_unpacked_into_its_temporary_directory_is_checked(dirs: dict[str, Path]) -> None:
    """A `kind = "static"` library bundled into an rlib comes back under `<out>/rustcXXXXXX/` for the link."""
    unpacked = dirs["out"] / "rustcAbc"
    argv = ["main.o", "-Wl,-Bstatic", "-limp", "-L", str(unpacked), "-o", "x"]
    assert linkcheck.problem(argv, [], out_dir=str(dirs["out"])).startswith(f"{unpacked / 'libimp.a'}\t")
    assert linkcheck.problem([*argv[:-2], str(unpacked / "imp.lib")], [], out_dir=str(dirs["out"]))
    assert linkcheck.problem(argv, [], out_dir=str(dirs["root"] / "elsewhere")) == ""


def test_an_argfile_is_read_as_rustc_writes_it(dirs: dict[str, Path], tmp_path: Path) -> None:
    """rustc falls back to `@file` for a long command line: a word a line, `\\` before spaces and itself."""
    spaced = tmp_path / "a dir"
    spaced.mkdir()
    shutil.copy(FIXTURE_IMPORTS, spaced / "libimp.a")
    words = ["-Wl,-Bstatic", "-limp", "-L", str(spaced)]
    (tmp_path / "args").write_text("\n".join(w.replace("\\", "\\\\").replace(" ", "\\ ") for w in words) + "\n")
    found = linkcheck.problem(["main.o", f"@{tmp_path / 'args'}"], [str(spaced)])
    assert found.startswith(f"{spaced / 'libimp.a'}\t")


def test_an_argfile_is_read_as_the_driver_reads_its_quotes(tmp_path: Path) -> None:
    """rustc escapes only spaces and `\\`: two `#[link]` names with quotes (`q'`, `'rest`) make gcc join their
    lines into one `-l` (red team 2, issue 11); the library it opens is the one checked, its harmless twin
    (no quote) is left alone, and a vertical tab (gcc splits there, clang not) is refused."""
    search = tmp_path / "out"
    search.mkdir()
    shutil.copy(FIXTURE_IMPORTS, search / "libq\n-lrest.a")
    args = tmp_path / "args"
    for lines, bad in ((["-Wl,-Bstatic", "-lq'", "-l'rest"], True), (["-Wl,-Bstatic", "-lq", "-lrest"], False)):
        args.write_text("\n".join([*lines, f"-L{search}"]) + "\n")
        found = linkcheck.problem(["main.o", f"@{args}"], [str(search)])
        assert found.startswith(f"{search / 'libq'}") == bad, found
    assert linkcheck._argfile(str(args)) == ["-Wl,-Bstatic", "-lq", "-lrest", f"-L{search}"]
    args.write_text("-l\"a\\\"b c\" 'd\\'e' f\\ g\n")
    assert linkcheck._argfile(str(args)) == ['-la"b c', "d'e", "f g"]
    args.write_text("-lq\v-lrest\n")
    assert "vertical tab" in linkcheck.problem([f"@{args}"], [str(search)])


def test_a_windows_target_links_import_archives(dirs: dict[str, Path]) -> None:
    argv = ["main.o", "-Wl,-Bstatic", "-limp", "-L", str(dirs["bad"])]
    assert linkcheck.problem(argv, [str(dirs["bad"])], "x86_64-pc-windows-gnu") == ""
    assert coff_object(b".text")  # the same reader judges single objects (tests/confine/test_linkinput.py)


def test_the_script_runs_the_real_linker_or_stops(dirs: dict[str, Path], tmp_path: Path) -> None:
    """Installed under the linker's name, it execs the real linker (here `echo`) or exits 1 with a report."""
    script = linkcheck.install(str(tmp_path / "bin"), "/bin/echo")
    assert Path(script).name == "echo"
    env = {"PATH": "/usr/bin:/bin", linkcheck.LINKER_ENV: "echo", linkcheck.DIRS_ENV: str(dirs["bad"]),
           linkcheck.REPORT_ENV: str(tmp_path / "report")}
    ok = subprocess.run([script, "-lgood", "-L", str(dirs["good"])], env=env, capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, f"-lgood -L {dirs['good']}\n")
    refused = subprocess.run([script, "-l:imp.lib", "-L", str(dirs["bad"])], env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 1 and refused.stdout == ""
    assert (tmp_path / "report").read_text().startswith(f"{dirs['bad'] / 'imp.lib'}\t")


def test_a_confined_link_polices_the_search_paths_nobody_granted(tmp_path: Path) -> None:
    """shim.intercept.confined hands the checking linker every native `-L` of a link, less the ones a policy
    entry grants by path (the owner chose them: a conda lib dir with RUNPATHs links as it is); a call that
    links nothing, or has no native `-L`, gets no checking linker."""
    from shim.cargo import rustc_args
    from shim.confine.rustc_grants import Grants
    from shim.intercept import confined as confined_compile

    policy = tmp_path / "cratecage.toml"
    policy.write_text('[permissions.build.some-sys]\n'
                      'directives = { action = "permit", list = ["rustc-link-search=/opt/conda/lib", '
                      '"rustc-link-search=/opt/pre/*"] }\n')
    env = {"CRATECAGE_POLICY": str(policy), "PATH": "/usr/bin:/bin"}
    assert {"/opt/conda/lib", "/opt/pre/*"} <= set(confined_compile.granted_search_paths(env))
    argv = ["--crate-name", "app", "--crate-type", "bin", "src/main.rs", "--out-dir", str(tmp_path / "deps"),
            "-L", "native=/opt/conda/lib", "-L", "native=/opt/pre/x", "-L", f"native={tmp_path}/out",
            "-L", f"dependency={tmp_path}/deps"]
    allowed = Grants([], [], [])
    scratch = tmp_path / "cratecage" / "tmp" / "native-1"  # the compile may write here, not in cratecage/
    scratch.mkdir(parents=True)
    report = confined_compile._check_link(rustc_args.parse(argv), str(scratch), env, allowed)
    assert report and env[linkcheck.DIRS_ENV] == f"{tmp_path}/out"
    assert env.pop(confined_compile._LINKER_PATH) == str(tmp_path / "cratecage" / "linkcheck" / "cc")
    assert linkcheck.interpreter() in allowed.execute
    a_library = ["--crate-name", "app", "--crate-type", "lib", "src/lib.rs", "--out-dir", str(tmp_path / "deps"),
                 "-L", f"native={tmp_path}/out"]
    no_native = ["--crate-name", "app", "--crate-type", "bin", "src/main.rs", "--out-dir", str(tmp_path / "deps"),
                 "-L", f"dependency={tmp_path}/deps"]
    for other in (a_library, no_native):
        assert confined_compile._check_link(rustc_args.parse(other), str(scratch), {**env}, Grants([], [], [])) == ""


def test_the_curated_search_paths_are_cached_under_the_identity_of_what_decides_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no policy applies, the curated defaults' search paths come from the per-user cache, kept under
    cratecage's version and the identity of curated.toml and the code that reads it; a cache of another
    identity is read again and replaced. Where the workspace is unknown, nothing is granted, cached or not."""
    from shim.intercept import confined as confined_compile
    from shim.policy import curated

    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "Cargo.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\n')
    env = {"PATH": "/usr/bin:/bin", "CRATECAGE_WORKSPACE_ROOT": str(tmp_path / "ws"),
           "CRATECAGE_CACHE_DIR": str(tmp_path / "cache")}
    fresh = confined_compile._search_paths(list(curated.entries()))
    cache = tmp_path / "cache" / confined_compile.CURATED_PATHS_CACHE
    assert fresh and confined_compile.granted_search_paths(env) == fresh and cache.is_file()
    ident = confined_compile._curated_identity()
    cache.write_text(f"{ident}\0\0/served/from/the/cache")
    assert confined_compile.granted_search_paths(env) == ["/served/from/the/cache"]
    monkeypatch.setattr(confined_compile, "_curated_identity", lambda: f"{ident} changed")
    assert confined_compile.granted_search_paths(env) == fresh
    assert cache.read_text() == f"{ident} changed\0\0" + "\n".join(fresh)
    unknown = {k: v for k, v in env.items() if k != "CRATECAGE_WORKSPACE_ROOT"}
    assert confined_compile.granted_search_paths(unknown) == []


def test_the_checking_linker_imports_compiled_modules_it_names(dirs: dict[str, Path], tmp_path: Path) -> None:
    """It runs with `-B` where the package is read-only, so install() writes the `.pyc` of every shim
    module it imports (CHECKER_MODULES): none of them is compiled from source at each link."""
    import importlib.util
    import sys

    script = linkcheck.install(str(tmp_path / "bin"), "/bin/echo")
    env = {"PATH": "/usr/bin:/bin", linkcheck.LINKER_ENV: "echo", linkcheck.DIRS_ENV: str(dirs["bad"]),
           linkcheck.REPORT_ENV: str(tmp_path / "report")}
    done = subprocess.run([linkcheck.interpreter(), "-ISB", "-X", "importtime", script, "-lgood",
                           "-L", str(dirs["good"])], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert {m for m in imported if m == "shim" or m.startswith("shim.")} == set(linkcheck.CHECKER_MODULES)
    for name in linkcheck.CHECKER_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        assert Path(importlib.util.cache_from_source(module.__file__)).is_file(), name
