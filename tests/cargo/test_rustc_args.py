"""The rustc argument model: flag table, parsing, argfiles, the program chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.cargo.rustc_args import FLAGS, ArgfileError, expand_argfiles, parse, split_chain

BUILD_SCRIPT_ARGV = (
    "--crate-name build_script_build --edition=2021 build.rs --error-format=json "
    "--json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type bin --emit=dep-info,link "
    "-C embed-bitcode=no --check-cfg cfg(docsrs,test) --check-cfg cfg(feature,values()) -C metadata=9f1 "
    "-C extra-filename=-1a2b --out-dir /t/debug/build/pkg-1a2b -C incremental=/t/debug/incremental "
    "-L dependency=/t/debug/deps --extern bdep=/t/debug/deps/libbdep-77.rlib"
).split()


def test_flag_table_is_sorted_and_unique() -> None:
    firsts = [f.names[0] for f in FLAGS]
    assert firsts == sorted(firsts)
    names = [n for f in FLAGS for n in f.names]
    assert len(names) == len(set(names))


def test_build_script_argv_is_read_fully() -> None:
    a = parse(BUILD_SCRIPT_ARGV)
    assert a.crate_name == "build_script_build"
    assert a.crate_types == ("bin",)
    assert a.emit == ("dep-info", "link")
    assert a.edition == "2021"
    assert a.out_dir == "/t/debug/build/pkg-1a2b"
    assert a.metadata == "9f1"
    assert a.extra_filename == "-1a2b"
    assert a.externs == (("bdep", "/t/debug/deps/libbdep-77.rlib"),)
    assert a.lib_paths == (("dependency", "/t/debug/deps"),)
    assert a.input == "build.rs"
    assert a.target is None and not a.test and a.unknown == ()


@pytest.mark.parametrize(
    "argv, field, expected",
    [
        (["--emit", "link=out.so,metadata"], "emit", ("link", "metadata")),
        (["--crate-type=lib", "--crate-type", "rlib,staticlib"], "crate_types", ("lib", "rlib", "staticlib")),
        (["-Cmetadata=ab", "-C", "extra-filename=-x"], "codegen", (("metadata", "ab"), ("extra-filename", "-x"))),
        (["-C", "prefer-dynamic"], "codegen", (("prefer-dynamic", None),)),
        (["--extern", "proc_macro"], "externs", (("proc_macro", None),)),
        (["--extern", "priv:noprelude:dep=/x/libdep.rlib"], "externs", (("dep", "/x/libdep.rlib"),)),
        (["-Lnative=/usr/lib", "-L", "/plain"], "lib_paths", (("native", "/usr/lib"), ("all", "/plain"))),
        (["--cfg", "feature=\"std\"", "--cfg=has_x"], "cfgs", ('feature="std"', "has_x")),
        (["--target", "wasm32-wasip1"], "target", "wasm32-wasip1"),
        (["--target=x86_64-unknown-linux-gnu"], "target", "x86_64-unknown-linux-gnu"),
        (["--test"], "test", True),
        (["-vV"], "version", True),
        (["--print", "cfg", "--print=sysroot"], "prints", ("cfg", "sysroot")),
        (["-o", "out", "x.rs"], "output", "out"),
        (["-Zunstable-options", "-Z", "threads=2"], "unstable", ("unstable-options", "threads=2")),
    ],
)
def test_flag_values(argv: list[str], field: str, expected: object) -> None:
    assert getattr(parse(argv), field) == expected


def test_values_of_unrecorded_flags_are_not_taken_for_inputs() -> None:
    a = parse(["-A", "warnings", "--cap-lints", "allow", "--json", "artifacts", "--color", "never", "lib.rs"])
    assert a.inputs == ("lib.rs",)
    assert a.cap_lints == "allow"


def test_unknown_flags_are_kept_not_fatal() -> None:
    a = parse(["--frobnicate", "lib.rs", "--crate-type", "lib"])
    assert a.unknown == ("--frobnicate",)
    assert a.inputs == ("lib.rs",)


def test_stdin_is_an_input() -> None:
    assert parse(["--crate-name", "probe0", "-"]).inputs == ("-",)


def test_later_codegen_value_wins() -> None:
    assert parse(["-C", "metadata=a", "-C", "metadata=b"]).metadata == "b"


def test_trailing_flag_without_value_does_not_crash() -> None:
    assert parse(["--crate-name"]).crate_name is None


def test_argfile_lines_become_arguments(tmp_path: Path) -> None:
    f = tmp_path / "args"
    f.write_text("--crate-name\nfoo bar\n--cfg\nx=\"a b\"\n")
    assert expand_argfiles(["-v", f"@{f}", "lib.rs"]) == ["-v", "--crate-name", "foo bar", "--cfg", 'x="a b"',
                                                          "lib.rs"]


def test_argfile_expansion_is_not_recursive(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.write_text("--test\n")
    outer = tmp_path / "outer"
    outer.write_text(f"@{inner}\n")
    assert expand_argfiles([f"@{outer}"]) == [f"@{inner}"]


def test_missing_argfile_is_an_argfile_error(tmp_path: Path) -> None:
    with pytest.raises(ArgfileError, match="cannot read argument file"):
        expand_argfiles([f"@{tmp_path}/gone"])


@pytest.mark.parametrize(
    "argv, cargo_env, chain",
    [
        (["/tc/bin/rustc", "-vV"], True, ["/tc/bin/rustc"]),
        (["/tc/bin/clippy-driver", "/tc/bin/rustc", "--crate-name", "a"], True,
         ["/tc/bin/clippy-driver", "/tc/bin/rustc"]),
        (["/tc/bin/clippy-driver", "/tc/bin/rustc", "-vV"], False, ["/tc/bin/clippy-driver"]),
        (["rustc", "rustc.rs"], True, ["rustc"]),
        (["/opt/ws-wrapper", "/usr/bin/rustc-1.96", "-"], True, ["/opt/ws-wrapper", "/usr/bin/rustc-1.96"]),
    ],
)
def test_program_chain(argv: list[str], cargo_env: bool, chain: list[str]) -> None:
    got_chain, rest = split_chain(argv, cargo_env=cargo_env)
    assert got_chain == chain
    assert got_chain + rest == argv
