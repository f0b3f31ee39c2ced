"""Search paths and libraries a build script points at that must stay refused now that its own package
directory and the system's libraries pass (fixtures/hostile-pkgdirs, one package per case, no policy):
a package's lib/ reached through a link it ships, another package's directory, a system library's name that
a linker script in OUT_DIR would answer, a probe's `-l` of a path, a library file that is a link out of the
package, and an archive of Windows import objects in OUT_DIR for a Linux target (GNU ld crashes on one). Each fails with its `cratecage:` line;
the twin, a search path into the package's own lib/, builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, own_lines

WS = FIXTURES / "hostile-pkgdirs"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-pkgdirs")


def build(cargo: Cargo, target: Path, package: str) -> tuple[bool, list[str]]:
    run = cargo(WS, "build", "--locked", "-p", package, wrapped=True, target_dir=target, check=False)
    return run.ok, own_lines(run.proc.stderr)


def test_a_search_path_into_the_packages_own_lib_builds(selected_cargo: Cargo, target: Path) -> None:
    assert (WS / "shipped" / "lib" / "libshipped.a").is_file()
    assert build(selected_cargo, target, "shipped") == (True, [])


@pytest.mark.parametrize("package, denied, why", [
    ("via-link", "cargo:rustc-link-search=native=", "search path reached through a symbolic link in the package"),
    ("other-pkg", "cargo:rustc-link-search=native=", "search path outside OUT_DIR and the package's own directory"),
    ("shadow", "cargo:rustc-link-lib=z", "a search path the script printed ("),
    ("probe-path", "rustc-probe denied: -l static:+verbatim=/etc/hostname", "a probe names a library plainly"),
    ("file-link", "cargo:rustc-link-search=native=", "libfilelink.a there, which is a symbolic link out of the package"),
    ("coff-out", "cargo:rustc-link-search=native=", "a member that is a Windows import object, which only a Windows "
                                                    "target links"),
])
def test_what_points_elsewhere_is_refused(selected_cargo: Cargo, target: Path, package: str, denied: str,
                                          why: str) -> None:
    ok, lines = build(selected_cargo, target, package)
    assert not ok
    assert any(f"build script of {package} 0.1.0" in line and denied in line and why in line for line in lines), lines


@pytest.mark.parametrize("package, archive", [
    ("coff-source", "libimp.a"),  # in its lib/ (passed as a search path), named by `#[link]` in the source
    ("coff-verbatim", "imp.lib"),  # in OUT_DIR under a name no `-l NAME` opens, named by a `+verbatim` `#[link]`
    ("coff-bundle", "libimp.a"),  # bundled into the rlib (`kind = "static"`), unpacked by rustc for the link
])
def test_an_import_archive_the_source_links_is_refused_at_the_link(selected_cargo: Cargo, target: Path,
                                                                   package: str, archive: str) -> None:
    """The directive checks pass the search path (a package's lib/ may hold import archives; OUT_DIR's file is
    no library name); the link checks what the linker is handed (shim.confine.linkcheck) and never starts it."""
    ok, lines = build(selected_cargo, target, package)
    assert not ok
    assert any(f"the link of the binary `{package.replace('-', '_')}` of {package} 0.1.0" in line
               and f"/{archive}, which is an archive with a member that is a Windows import object" in line
               for line in lines), lines
