"""shim.compile.replay_errors over what rustc really printed (tests/data/replay_errors/, made by
tests/capture_replay_errors.py with rustc 1.95 and 1.101-nightly): the cause named, the advice given."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.compile import replay_errors
from shim.compile.replay_errors import (CRATE_GRAPH, NATIVE_ONLY, OTHER, TARGET_DEPENDENCY, diagnose,
                                        explain_script_failure, target_dependencies)

DATA = Path(__file__).resolve().parents[1] / "data" / "replay_errors"
RELEASES = ("1.95.0", "1.101.0-nightly")

# getrandom 0.2's manifest, as cargo normalises it: `wasi` only for wasi targets
GETRANDOM_TARGETS = {"wasi": 'cfg(target_os = "wasi")', "libc": "cfg(unix)"}
# scenario: (kind, code, crate rustc could not load or the missing target dependency, the crate that depends on
# it), each diagnosed with GETRANDOM_TARGETS as the crate's dependencies for other targets
CASES = {
    "facade_dep_by_call": (CRATE_GRAPH, "E0460", "std", "doclink"),
    "facade_dep_by_use": (CRATE_GRAPH, "E0463", "doclink", None),
    "proc_macro_missing": (CRATE_GRAPH, "E0463", "reexport", None),
    "host_rlib": (CRATE_GRAPH, "E0461", "native", None),
    "other_rustc": (CRATE_GRAPH, "E0514", "old", None),
    "real_ppv_lite86": (CRATE_GRAPH, "E0463", "zerocopy", None),
    "target_dependency": (TARGET_DEPENDENCY, "E0432", "wasi", None),
    "unix_api": (NATIVE_ONLY, "E0433", None, None),
    "configured_out": (NATIVE_ONLY, "E0432", None, None),
    "pointer_width": (OTHER, "E0080", None, None),
}


def captured(scenario: str, release: str) -> str:
    return (DATA / f"{scenario}.{release}.jsonl").read_text()


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("scenario", sorted(CASES))
def test_each_real_failure_is_diagnosed_by_its_cause(scenario: str, release: str) -> None:
    kind, code, crate, needed_by = CASES[scenario]
    found = diagnose(captured(scenario, release), GETRANDOM_TARGETS)
    assert (found.kind, found.code, found.crate, found.needed_by) == (kind, code, crate, needed_by)
    assert found.error.startswith(f"error[{code}]")
    assert "\x1b[" not in found.error  # rustc's colours are gone


@pytest.mark.parametrize("release", RELEASES)
def test_a_crate_rustc_could_not_load_wins_over_the_errors_rustc_printed_first(release: str) -> None:
    stderr = captured("real_ppv_lite86", release)
    first = next(line for line in stderr.splitlines() if '"level":"error"' in line)
    assert '"code":"E0432"' in first  # rustc opens with the consequence
    found = diagnose(stderr)
    assert found.code == "E0463" and "can't find crate for `zerocopy`" in found.error


@pytest.mark.parametrize("release", RELEASES)
def test_the_cause_names_the_missing_crate_and_who_needs_it(release: str) -> None:
    cause = diagnose(captured("facade_dep_by_call", release)).cause
    assert cause.startswith("rustc could not load crate `std`, which `doclink` depends on (E0460")
    by_use = diagnose(captured("facade_dep_by_use", release)).cause
    assert "crate `doclink` or a crate it was compiled against (E0463" in by_use


@pytest.mark.parametrize("release", RELEASES)
def test_a_dependency_only_another_target_has_is_named_with_its_table(release: str) -> None:
    found = diagnose(captured("target_dependency", release), GETRANDOM_TARGETS)
    assert found.cause.startswith("it needs crate `wasi`, which its Cargo.toml declares only under "
                                  "`[target.'cfg(target_os = \"wasi\")'.dependencies]`")
    assert diagnose(captured("target_dependency", release)).kind == OTHER  # a name no manifest declares


def test_target_dependencies_are_those_of_target_tables_only(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text(
        '[package]\nname = "getrandom"\nversion = "0.2.17"\n\n[dependencies.cfg-if]\nversion = "1"\n\n'
        '[target.\'cfg(target_os = "wasi")\'.dependencies.wasi]\nversion = "0.11"\n\n'
        '[target."cfg(unix)".dependencies]\nlibc = "0.2"\ncfg-if = "1"\nwasm-bindgen = "0.2"\n\n'
        '[target."cfg(unix)".build-dependencies]\ncc = "1"\n')
    assert target_dependencies(str(tmp_path)) == {"wasi": 'cfg(target_os = "wasi")', "libc": "cfg(unix)",
                                                   "wasm_bindgen": "cfg(unix)"}
    assert target_dependencies(str(tmp_path / "missing")) == {}
    (tmp_path / "Cargo.toml").write_text("[package\n")
    assert target_dependencies(str(tmp_path)) == {}


@pytest.mark.parametrize("scenario", sorted(CASES))
def test_only_a_configured_out_api_gets_the_native_only_advice(scenario: str) -> None:
    found = diagnose(captured(scenario, RELEASES[0]), GETRANDOM_TARGETS)
    advice = replay_errors.hint(found, "app")
    assert ("needs a native-only API" in advice) == (CASES[scenario][0] == NATIVE_ONLY)
    assert ("cratecage's fault" in advice) == (CASES[scenario][0] == CRATE_GRAPH)
    if found.kind != CRATE_GRAPH:
        assert '`sandbox = "native"` in `[permissions.build.app]`' in advice


def test_without_json_the_last_lines_rustc_printed_are_the_error() -> None:
    found = diagnose("warning: something\nerror: couldn't create a temp dir: Permission denied\n")
    assert found.kind == OTHER
    assert found.error.endswith("couldn't create a temp dir: Permission denied")
    assert diagnose("").error == "rustc failed without a message"


def test_a_long_error_is_cut_to_a_few_lines() -> None:
    rendered = "\\n".join(f"line {i}" for i in range(30))
    line = '{"level":"error","message":"m","code":null,"children":[],"rendered":"' + rendered + '"}'
    found = diagnose(line)
    assert found.error.splitlines() == [f"line {i}" for i in range(replay_errors.RENDERED_LINES)] + ["..."]


def test_a_build_script_s_own_compile_is_explained_only_for_our_causes_and_missing_apis() -> None:
    subject = "build script of app 0.1.0"
    ours = explain_script_failure(subject, captured("facade_dep_by_call", RELEASES[0]), "app")
    assert ours is not None and ours.startswith(f"cratecage: {subject} does not compile for wasm32-wasip1: "
                                                "rustc could not load crate `std`")
    missing_api = explain_script_failure(subject, captured("unix_api", RELEASES[0]), "app")
    assert missing_api is not None and "needs a native-only API" in missing_api
    assert explain_script_failure(subject, captured("pointer_width", RELEASES[0]), "app") is None
