"""`cratecage audit`'s summary (shim.sandbox.audit.summary) of a hand-written log: each unit's last run, the
units compiled natively, and the closing lines counting what ran where, all read from the log."""

from __future__ import annotations

import json
from pathlib import Path

from shim.sandbox import audit


def run(kind: str, crate: str, run_id: str, exit_code: int = 0, **extra: object) -> dict:
    return {"event": "run", "kind": kind, "crate": crate, "version": "1.0.0", "run": run_id,
            "exit_code": exit_code, "seconds": 0.5, "message": "", "denials": 0, **extra}


def native(kind: str, crate: str) -> dict:
    return {"event": "native", "kind": kind, "crate": crate, "version": "1.0.0", "run": "n", "policy": "cratecage.toml"}


def summary(tmp_path: Path, *events: dict) -> list[str]:
    log = tmp_path / audit.AUDIT_LOG
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    return audit.summary(log)


def test_the_last_two_lines_count_scripts_macro_crates_and_expansions_as_wasm_and_none_natively(tmp_path: Path) -> None:
    lines = summary(tmp_path, run("build", "serde", "a"), run("build", "libc", "b", exit_code=1),
                    run("macro", "serde_derive", "c", expansions=4, consumer="app 0.1.0"),
                    run("macro", "serde_derive", "d", expansions=1, consumer="lib 0.1.0"),
                    run("macro", "thiserror-impl", "e", expansions=1, consumer="app 0.1.0"))
    assert lines[-2:] == [
        "ran as wasm in the sandbox: 2 build scripts (1 failed), 2 proc macro crates (6 expansions in 2 crates)",
        "ran natively: 0 build scripts, 0 proc macro crates"]


def test_a_unit_compiled_natively_after_its_sandboxed_runs_counts_as_native_only(tmp_path: Path) -> None:
    lines = summary(tmp_path, run("build", "zlib-sys", "a"), run("macro", "serde_derive", "b", expansions=2,
                                                                 consumer="app 0.1.0"),
                    native("build", "zlib-sys"), native("macro", "serde_derive"), run("build", "serde", "c"))
    assert [line.split()[:3] for line in lines[1:-2]] == [
        ["serde", "1.0.0", "ok"], ["zlib-sys", "1.0.0", "native"], ["serde_derive", "1.0.0", "native"]]  # scripts first
    assert lines[-2:] == [
        "ran as wasm in the sandbox: 1 build script (0 failed), 0 proc macro crates (0 expansions in 0 crates)",
        'ran natively: 1 build script, 1 proc macro crate (sandbox = "native" in the policy)']


def test_a_sandboxed_run_after_a_native_compile_counts_as_wasm_again(tmp_path: Path) -> None:
    lines = summary(tmp_path, native("build", "zlib-sys"), run("build", "zlib-sys", "a"))
    assert lines[-1] == "ran natively: 0 build scripts, 0 proc macro crates"
    assert lines[-2].startswith("ran as wasm in the sandbox: 1 build script (0 failed)")


def test_a_native_unit_is_recorded_even_as_the_first_event_of_a_build_directory(tmp_path: Path) -> None:
    state = tmp_path / "target" / "cratecage"
    audit.native(state, "macro", "serde_derive", "1.0.0", "cratecage.toml")
    assert audit.summary(state / audit.AUDIT_LOG)[-1] == (
        'ran natively: 0 build scripts, 1 proc macro crate (sandbox = "native" in the policy)')
