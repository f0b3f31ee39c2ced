"""shim.cargo.layout over rustc command lines of both build-dir layouts, copied from `cargo build -v` (cargo 1.95
for the old layout, cargo 1.101.0-nightly 2026-10-29 for the new one; the fixtures/demo workspace), with
the marker files cargo leaves in a build directory laid out under a temporary directory."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.cargo import env as compile_env
from shim.cargo import journal, layout
from shim.cargo.rustc_args import parse
from shim.compile import replay

TRIPLE = "x86_64-unknown-linux-gnu"
TAIL = "--error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type"


@dataclass(frozen=True)
class Case:
    name: str
    argv: str  # <T>: the target directory, <B>: a `build.build-dir` elsewhere
    markers: tuple[str, ...]  # files cargo keeps there (relative to the temporary directory)
    root: str  # the build directory expected
    stem: str
    unit: str  # layout.unit_name
    fingerprint: str | None
    layout: str

    @property
    def package(self) -> str:
        return self.argv.split()[1].replace("_", "-") if "build_script" not in self.argv else "app"


OLD_MARKERS = ("T/CACHEDIR.TAG", "T/.rustc_info.json", "T/debug/.cargo-lock")  # + T/<triple>/CACHEDIR.TAG
NEW_MARKERS = ("T/CACHEDIR.TAG", "T/.rustc_info.json", "T/debug/.cargo-lock", "T/debug/.cargo-build-lock",
               "T/debug/.cargo-artifact-lock")
CASES = [
    Case("old library",
         f"--crate-name gen_consts --edition=2021 gen-consts/src/lib.rs {TAIL} lib --emit=dep-info,metadata,link "
         "-C embed-bitcode=no -C metadata=7b56790cb7e80ba6 -C extra-filename=-b004c0143b67abd7 "
         "--out-dir <T>/debug/deps -C incremental=<T>/debug/incremental -L dependency=<T>/debug/deps",
         OLD_MARKERS, "T", "gen_consts-b004c0143b67abd7", "deps",
         "T/debug/.fingerprint/gen-consts-b004c0143b67abd7", layout.OLD),
    Case("old build script",
         f"--crate-name build_script_build --edition=2021 app/build.rs {TAIL} bin --emit=dep-info,link "
         "-C embed-bitcode=no -C metadata=f6ecde8d46553839 -C extra-filename=-c7c1e47eb36fcabe "
         "--out-dir <T>/debug/build/app-c7c1e47eb36fcabe -C incremental=<T>/debug/incremental "
         "-L dependency=<T>/debug/deps --extern gen_consts=<T>/debug/deps/libgen_consts-b004c0143b67abd7.rlib",
         OLD_MARKERS, "T", "build_script_build-c7c1e47eb36fcabe", "app-c7c1e47eb36fcabe",
         "T/debug/.fingerprint/app-c7c1e47eb36fcabe", layout.OLD),
    Case("old target unit of a --target build",
         f"--crate-name helper --edition=2021 helper/src/lib.rs {TAIL} lib --emit=dep-info,metadata,link "
         "-C metadata=0e5e2a1e0c0e9d18 -C extra-filename=-d68f257c8df09dc7 "
         f"--out-dir <T>/{TRIPLE}/debug/deps --target {TRIPLE} -L dependency=<T>/{TRIPLE}/debug/deps "
         "-L dependency=<T>/debug/deps",
         (*OLD_MARKERS, f"T/{TRIPLE}/CACHEDIR.TAG", f"T/{TRIPLE}/debug/.cargo-lock"), "T", "helper-d68f257c8df09dc7",
         "deps",
         f"T/{TRIPLE}/debug/.fingerprint/helper-d68f257c8df09dc7", layout.OLD),
    Case("old, build.build-dir outside the target dir",
         f"--crate-name gen_consts --edition=2021 gen-consts/src/lib.rs {TAIL} lib --emit=dep-info,metadata,link "
         "-C metadata=7b56790cb7e80ba6 -C extra-filename=-b004c0143b67abd7 --out-dir <B>/debug/deps "
         "-C incremental=<B>/debug/incremental -L dependency=<B>/debug/deps",
         ("T/CACHEDIR.TAG", "T/debug/.cargo-lock", "B/CACHEDIR.TAG", "B/.rustc_info.json", "B/debug/.cargo-lock"),
         "B", "gen_consts-b004c0143b67abd7", "deps", "B/debug/.fingerprint/gen-consts-b004c0143b67abd7",
         layout.OLD),
    Case("new library",
         f"--crate-name gen_consts --edition=2021 gen-consts/src/lib.rs {TAIL} lib --emit=dep-info,metadata,link "
         "-Z embed-metadata=no -C embed-bitcode=no -C metadata=4fadcd9424ee6dac -C extra-filename=-50b0bcc85b20709b "
         "--out-dir <T>/debug/build/gen-consts/50b0bcc85b20709b/out -C incremental=<T>/debug/incremental "
         "--force-warn=unused_crate_dependencies",
         NEW_MARKERS, "T", "gen_consts-50b0bcc85b20709b", "gen-consts-50b0bcc85b20709b",
         "T/debug/build/gen-consts/50b0bcc85b20709b/fingerprint", layout.NEW),
    Case("new build script",
         f"--crate-name build_script_build --edition=2021 app/build.rs {TAIL} bin --emit=dep-info,link "
         "-C embed-bitcode=no -C metadata=97fa3a18f007e9bb --out-dir <T>/debug/build/app/d84c11dfe91dfeee/out "
         "-C incremental=<T>/debug/incremental "
         "--extern gen_consts=<T>/debug/build/gen-consts/50b0bcc85b20709b/out/libgen_consts-50b0bcc85b20709b.rlib "
         "--extern gen_consts=<T>/debug/build/gen-consts/50b0bcc85b20709b/out/libgen_consts-50b0bcc85b20709b.rmeta",
         NEW_MARKERS, "T", "build_script_build", "app-d84c11dfe91dfeee",
         "T/debug/build/app/d84c11dfe91dfeee/fingerprint", layout.NEW),
    Case("new target unit of a --target build",
         f"--crate-name helper --edition=2021 helper/src/lib.rs {TAIL} lib --emit=dep-info,metadata,link "
         "-C metadata=aa1e0c4b2f0ba1a3 -C extra-filename=-25f0e49c420cc403 "
         f"--out-dir <T>/{TRIPLE}/debug/build/helper/25f0e49c420cc403/out --target {TRIPLE} "
         "-L dependency=<T>/debug/build/helper/25f0e49c420cc403/out",
         (*NEW_MARKERS, f"T/{TRIPLE}/CACHEDIR.TAG", f"T/{TRIPLE}/debug/.cargo-lock",
          f"T/{TRIPLE}/debug/.cargo-build-lock"), "T",
         "helper-25f0e49c420cc403", "helper-25f0e49c420cc403",
         f"T/{TRIPLE}/debug/build/helper/25f0e49c420cc403/fingerprint", layout.NEW),
    Case("new host unit of a --target build",
         f"--crate-name gen_consts --edition=2021 gen-consts/src/lib.rs {TAIL} lib --emit=dep-info,metadata,link "
         "-C metadata=1d7e0b8c1f7a5e27 -C extra-filename=-6694e1b6f723e03c "
         "--out-dir <T>/debug/build/gen-consts/6694e1b6f723e03c/out",
         (*NEW_MARKERS, f"T/{TRIPLE}/debug/.cargo-lock"), "T", "gen_consts-6694e1b6f723e03c",
         "gen-consts-6694e1b6f723e03c", "T/debug/build/gen-consts/6694e1b6f723e03c/fingerprint", layout.NEW),
    Case("new, build.build-dir outside the target dir",
         f"--crate-name build_script_build --edition=2021 app/build.rs {TAIL} bin --emit=dep-info,link "
         "-C metadata=97fa3a18f007e9bb --out-dir <B>/debug/build/app/d84c11dfe91dfeee/out "
         "-C incremental=<B>/debug/incremental",
         ("T/CACHEDIR.TAG", "T/debug/.cargo-lock", "T/debug/.cargo-artifact-lock", "B/CACHEDIR.TAG",
          "B/.rustc_info.json", "B/debug/.cargo-build-lock"),
         "B", "build_script_build", "app-d84c11dfe91dfeee", "B/debug/build/app/d84c11dfe91dfeee/fingerprint",
         layout.NEW),
    Case("a target dir named like the triple, --target inside it",
         f"--crate-name helper helper/src/lib.rs {TAIL} lib -C extra-filename=-d68f257c8df09dc7 "
         f"--out-dir <T>/{TRIPLE}/{TRIPLE}/debug/deps --target {TRIPLE}",
         (f"T/{TRIPLE}/CACHEDIR.TAG", f"T/{TRIPLE}/{TRIPLE}/CACHEDIR.TAG", f"T/{TRIPLE}/{TRIPLE}/debug/.cargo-lock"),
         f"T/{TRIPLE}",
         "helper-d68f257c8df09dc7", "deps", f"T/{TRIPLE}/{TRIPLE}/debug/.fingerprint/helper-d68f257c8df09dc7",
         layout.OLD),
    Case("a target spec file",
         f"--crate-name helper helper/src/lib.rs {TAIL} lib -C extra-filename=-1 "
         "--out-dir <T>/my-board/release/build/helper/1/out --target /specs/my-board.json",
         ("T/CACHEDIR.TAG", "T/my-board/release/.cargo-lock"), "T", "helper-1", "helper-1",
         "T/my-board/release/build/helper/1/fingerprint", layout.NEW),
]


def materialise(case: Case, tmp_path: Path, *, markers: bool = True) -> tuple[list[str], Path]:
    if markers:
        for marker in case.markers:
            (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / marker).touch()
    text = case.argv.replace("<T>", str(tmp_path / "T")).replace("<B>", str(tmp_path / "B"))
    return shlex.split(text), tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_unit_is_placed_in_its_build_dir_from_its_arguments(case: Case, tmp_path: Path) -> None:
    argv, base = materialise(case, tmp_path)
    args = parse(argv)
    assert args.out_dir is not None
    assert layout.unit_layout(args.out_dir) == case.layout
    assert layout.build_root(args.out_dir, args.target) == str(base / case.root)
    assert layout.state_dir(args.out_dir, args.target) == str(base / case.root / "cratecage")
    assert layout.output_stem(args) == case.stem
    assert layout.unit_name(args.out_dir) == case.unit
    expected = str(base / case.fingerprint) if case.fingerprint else None
    assert layout.fingerprint_dir(args.out_dir, case.package, args.extra_filename) == expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_without_cargos_lock_files_the_shape_of_the_out_dir_decides(case: Case, tmp_path: Path) -> None:
    """A copy of a build dir (a CI cache): no lock, maybe no tag; the out-dir's shape still places it."""
    argv, base = materialise(case, tmp_path, markers=False)
    args = parse(argv)
    assert args.out_dir is not None
    assert layout.locked_profile(args.out_dir) is None
    assert layout.build_root(args.out_dir, args.target) == str(base / case.root)


def test_build_scripts_are_where_cargo_runs_them_and_their_modules_never_collide(tmp_path: Path) -> None:
    """The new layout names every build-script out-dir `out`: the unit name keeps their modules apart."""
    state = str(tmp_path / "T" / "cratecage")
    outs = [f"{tmp_path}/T/debug/build/{pkg}/{h}/out" for pkg, h in
            (("serde", "1111"), ("serde_json", "2222"), ("serde", "3333"))]
    modules = {layout.module_path(state, out, "build_script_build") for out in outs}
    assert len(modules) == 3
    assert all(layout.state_of_module(m) == state for m in modules)
    old = layout.module_path(state, f"{tmp_path}/T/debug/build/serde-4444", "build_script_build-4444")
    assert old == f"{state}/build/serde-4444/build_script_build-4444.wasm"  # as cratecage 0.5 placed it


def test_proc_macro_modules_of_both_layouts_never_collide(tmp_path: Path) -> None:
    """Every proc macro of the old layout shares `deps/`: its output stem names it; the new layout's unit."""
    state = str(tmp_path / "T" / "cratecage")
    old = {layout.macro_module_path(state, f"{tmp_path}/T/debug/deps", stem)
           for stem in ("serde_derive-1111", "serde_derive-2222", "thiserror_impl-1111")}
    assert len(old) == 3 and f"{state}/macro/serde_derive-1111/serde_derive-1111.wasm" in old
    new = {layout.macro_module_path(state, f"{tmp_path}/T/debug/build/{pkg}/{h}/out", stem)
           for pkg, h, stem in (("serde_derive", "1111", "serde_derive-aaaa"),
                                ("serde_derive", "2222", "serde_derive-aaaa"))}
    assert new == {f"{state}/macro/serde_derive-1111/serde_derive-aaaa.wasm",
                   f"{state}/macro/serde_derive-2222/serde_derive-aaaa.wasm"}


@pytest.mark.parametrize("rlib", [
    "<T>/debug/deps/libgen_consts-b004c0143b67abd7.rlib",
    "<T>/debug/build/gen-consts/50b0bcc85b20709b/out/libgen_consts-b004c0143b67abd7.rlib",
], ids=["old", "new"])
def test_the_journal_of_both_layouts_is_in_one_state_dir(rlib: str, tmp_path: Path) -> None:
    for marker in NEW_MARKERS:
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).touch()
    path = rlib.replace("<T>", str(tmp_path / "T"))
    assert journal.entry_path(path) == str(tmp_path / "T" / "cratecage" / "journal" /
                                           "libgen_consts-b004c0143b67abd7.rlib.args")


@pytest.mark.parametrize("parts", layout.SCRIPT_OUTPUT, ids=["old-output", "new-run-stdout"])
def test_a_build_script_runs_output_is_found_beside_its_out_dir(parts: tuple[str, ...], tmp_path: Path) -> None:
    out = tmp_path / "run-unit" / "out"
    out.mkdir(parents=True)
    assert layout.script_output(str(out)) is None
    stdout = out.joinpath(*parts)
    stdout.parent.mkdir(parents=True, exist_ok=True)
    stdout.write_text("cargo:rustc-env=A=1\ncargo:rustc-cfg=c\n")
    assert layout.script_output(str(out)) == b"cargo:rustc-env=A=1\ncargo:rustc-cfg=c\n"
    assert compile_env.script_rustc_env(str(out)) == {"A": "1"}


@pytest.mark.parametrize("out_dir, expected", [
    ("/t/debug/build/app-c7c1e47eb36fcabe/out", layout.OLD),  # an old layout's OUT_DIR
    ("/t/debug/build/app/66655bd7287a0808/out", layout.NEW),
    ("/t/debug/build/build/66655bd7287a0808/out", layout.NEW),  # a package named `build`
    ("/t/debug/deps", layout.OLD),
    ("/t/debug/examples", layout.OLD),
])
def test_the_layout_of_an_out_dir_is_read_from_its_shape(out_dir: str, expected: str) -> None:
    assert layout.unit_layout(out_dir) == expected


@pytest.mark.parametrize("case", [CASES[0], CASES[4]], ids=["old", "new"])
def test_forgetting_a_native_build_removes_its_outputs_fingerprint_and_incremental_state(
        case: Case, tmp_path: Path) -> None:
    argv, base = materialise(case, tmp_path)
    args = parse(argv)
    assert args.out_dir is not None
    out = Path(args.out_dir)
    stem = layout.output_stem(args)
    rlib = out / f"lib{stem}.rlib"
    kept = out / "libother-1.rlib"
    fingerprint = Path(layout.fingerprint_dir(args.out_dir, "gen-consts", args.extra_filename) or "")
    incremental = base / "T" / "debug" / "incremental" / "gen_consts-0abc"
    for path in (rlib, out / f"lib{stem}.rmeta", out / f"{stem}.d", kept, fingerprint / "lib-gen_consts",
                 incremental / "s-1" / "dep-graph.bin"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    replay.forget_native(str(rlib), args, "gen-consts")
    assert not rlib.exists() and not (out / f"lib{stem}.rmeta").exists() and not (out / f"{stem}.d").exists()
    assert not fingerprint.exists() and not incremental.exists()
    assert kept.exists() and os.path.isdir(base / "T" / "debug")


def test_a_profile_dirs_crate_files_are_found_in_either_layout(tmp_path: Path) -> None:
    """What a `cargo build -Zbuild-std` leaves for cratecage's private sysroot (shim.toolchain.sysroot)."""
    old, new = tmp_path / "old" / "release", tmp_path / "new" / "release"
    for path in (old / "deps" / "libstd-1.rlib", old / "deps" / "std-1.d", new / "build" / "std" / "1" / "out" /
                 "libstd-1.rlib", new / "build" / "std" / "1" / "fingerprint" / "lib-std"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert layout.unit_outputs(str(old), "lib*.rlib") == [str(old / "deps" / "libstd-1.rlib")]
    assert layout.unit_outputs(str(new), "lib*.rlib") == [str(new / "build" / "std" / "1" / "out" / "libstd-1.rlib")]
