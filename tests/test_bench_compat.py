"""How the compatibility bench (tests/bench_compat.py) reads a build: which package failed, why, and whether
a build script printed the same thing natively and wrapped. The texts are cut from real runs of the
corpus (cargo 1.95, `--keep-going`); no build runs here: `make bench BENCH_ARGS="--only compat"` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.compile import replay_errors

import bench_compat as bc

REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"


def pkg(name: str, version: str, *deps: str, script: bool = True) -> bc.Package:
    return bc.Package(f"{REGISTRY}#{name}@{version}", name, version, script, tuple(f"{REGISTRY}#{d}" for d in deps))


def graph(*packages: bc.Package) -> dict[str, bc.Package]:
    return {p.id: p for p in packages}


LIBZ = pkg("libz-sys", "1.1.33")
JEMALLOC = pkg("tikv-jemalloc-sys", "0.6.1+5.3.0-1-ge13ca99")
M11, M12 = pkg("markup5ever", "0.11.0"), pkg("markup5ever", "0.12.1")
GETRANDOM = pkg("getrandom", "0.2.17", script=False)
HTML = pkg("html5ever", "0.26.0", "markup5ever@0.11.0")
LIBM = pkg("libm", "0.2.16")
CORPUS = graph(LIBZ, JEMALLOC, M11, M12, GETRANDOM, HTML, LIBM)

RUN_FAILED = """\
error: failed to run custom build command for `libz-sys v1.1.33`

Caused by:
  process didn't exit successfully: `/t/debug/build/libz-sys-2160/build-script-build` (exit status: 1)
  --- stdout
  cargo:rerun-if-env-changed=LIBZ_SYS_STATIC
  cargo:warning=Could not find zlib include paths via pkg-config: because: cratecage: build script of libz-sys
    to permit it, add to the policy:
      [permissions.build.libz-sys]
      process-spawn = { action = "permit", programs = ["pkgconf"] }

  --- stderr
  cratecage: build script of libz-sys 1.1.33 failed: 1 denied request (and 1 not granted, reported only), listed below
  cratecage: build script of libz-sys 1.1.33: env-access not granted: CC: the build script may not see this variable
    to permit it, add to the policy:
      [permissions.build.libz-sys]
      env-access = { action = "permit", vars = ["CC"] }
  cratecage: build script of libz-sys 1.1.33: process-spawn denied: pkg-config: the policy does not grant this program to the crate
    to permit it, add to the policy:
      [permissions.build.libz-sys]
      process-spawn = { action = "permit", programs = ["pkg-config"] }
   Compiling wasm-bindgen-macro v0.2.130
error: failed to run custom build command for `libm v0.2.16`

Caused by:
  --- stderr
  cratecage: build script of libm 0.2.16: directives denied: cargo:rustc-env=CFG_OPT_LEVEL=0: rustc, the linker or a program they start reads this variable: names with the word CFG configure tools
    to permit it, add to the policy:
      [permissions.build.libm]
      directives = { action = "permit", list = ["rustc-env=CFG_OPT_LEVEL"] }
"""

CONFIGURE_FAILED = """\
error: failed to run custom build command for `tikv-jemalloc-sys v0.6.1+5.3.0-1-ge13ca99`

Caused by:
  --- stderr
  configure: error: cannot run C compiled programs.
  thread 'main' (1) panicked at build.rs:407:19:
  failed to execute command: cratecage: build script of tikv-jemalloc-sys 0.6.1+5.3.0-1-ge13ca99: process-spawn denied: tail: the policy does not grant this program to the crate
  cratecage: build script of tikv-jemalloc-sys 0.6.1+5.3.0-1-ge13ca99 panicked or aborted (see its message above)
  cratecage: build script of tikv-jemalloc-sys 0.6.1+5.3.0-1-ge13ca99: process-spawn denied: tail: the policy does not grant this program to the crate
    to permit it, add to the policy:
      [permissions.build.tikv-jemalloc-sys]
      process-spawn = { action = "permit", programs = ["tail"] }
  cratecage: build script of tikv-jemalloc-sys 0.6.1+5.3.0-1-ge13ca99: process-spawn not granted: /t/debug/build/tikv-jemalloc-sys-598a/out/build/conftest: started by sh (/usr/bin/bash): a file in a directory the build script can write (OUT_DIR, the temp dir, a writable grant) is never run
"""

GAP = """\
error: failed to run custom build command for `libm v0.2.16`

Caused by:
  --- stderr
  thread 'main' panicked at build.rs:12:5:
  called `Result::unwrap()` on an `Err` value: Error { kind: Unsupported, message: "operation not supported on this platform" }
  cratecage: build script of libm 0.2.16 panicked or aborted (see its message above)
"""


def replay_failure(consumer: bc.Package, diagnosis: replay_errors.Diagnosis) -> str:
    """Two consumers' replays of getrandom failing, as replay.py words them, with rustc's error indented."""
    return (f"cratecage: build-dependency getrandom 0.2.17 (of the build script of {consumer.label}) does not "
            f"compile for wasm32-wasip1: {diagnosis.cause}\n    error[E0433]: failed to resolve\n"
            f"  hint: {replay_errors.hint(diagnosis, consumer.name)}\n"
            f"error: could not compile `{consumer.name}` (build script)\n")


def cause_of(stderr: str, package: bc.Package, stage: str = bc.SCRIPT_RAN) -> bc.Cause:
    messages = bc.messages_by_package(stderr, CORPUS).get(package.id, [])
    return bc.classify(package, stage, messages, bc.script_stderr(stderr, package))


def test_a_program_the_policy_does_not_grant_is_needs_grant_with_the_entry_to_paste() -> None:
    cause = cause_of(RUN_FAILED, LIBZ)
    assert (cause.cls, cause.detail) == ("needs-grant", "program")
    assert cause.entry == 'process-spawn = { action = "permit", programs = ["pkg-config"] }'
    assert "process-spawn denied: pkg-config" in cause.line


def test_a_fallbacks_refusal_names_no_entry_but_is_not_ungrantable() -> None:
    """libz-sys tries pkgconf after pkg-config was refused: that line offers no entry of its own (it says
    which grant to make instead), and the cause stays the refused pkg-config with its entry."""
    fallback = ("  cratecage: build script of libz-sys 1.1.33: process-spawn not granted: pkgconf: the policy does "
                "not grant this program to the crate (the crate's fallback after pkg-config was refused: grant "
                "pkg-config)\n")
    stderr = RUN_FAILED.replace("  --- stderr\n", "  --- stderr\n" + fallback, 1)
    assert fallback in stderr
    cause = cause_of(stderr, LIBZ)
    assert (cause.cls, cause.detail) == ("needs-grant", "program")
    assert "process-spawn denied: pkg-config" in cause.line


def test_a_refused_rustc_env_name_is_directive_refused() -> None:
    cause = cause_of(RUN_FAILED, LIBM)
    assert cause.cls == "directive refused"
    assert cause.entry == 'directives = { action = "permit", list = ["rustc-env=CFG_OPT_LEVEL"] }'


def test_a_cargo_status_line_printed_in_between_does_not_join_a_message() -> None:
    messages = bc.messages_by_package(RUN_FAILED, CORPUS)[LIBZ.id]
    assert all("Compiling" not in line for m in messages for line in m.more)
    assert [m.line.split(": ")[2].split(" ")[0] for m in messages[1:]] == ["env-access", "process-spawn"]


def test_a_refusal_no_entry_can_lift_comes_before_what_the_script_did_after_it() -> None:
    cause = cause_of(CONFIGURE_FAILED, JEMALLOC)
    assert cause.cls == "ungrantable"
    assert "conftest" in cause.line and "never run" in cause.line


def test_an_api_wasm_lacks_is_read_from_the_script_stderr() -> None:
    cause = cause_of(GAP, LIBM)
    assert (cause.cls, cause.detail) == ("wasm gap", "facade")
    assert "not supported on this platform" in cause.line


@pytest.mark.parametrize("diagnosis", [
    replay_errors.Diagnosis(replay_errors.TARGET_DEPENDENCY, "", "E0433", "wasi", target='cfg(target_os = "wasi")'),
    replay_errors.Diagnosis(replay_errors.CRATE_GRAPH, "", "E0460", "zerocopy", "ppv_lite86"),
    replay_errors.Diagnosis(replay_errors.NATIVE_ONLY, "", "E0432"),
], ids=lambda d: d.kind)
def test_a_replay_failure_belongs_to_the_build_script_that_needed_it_and_keeps_its_kind(diagnosis) -> None:
    stderr = replay_failure(M11, diagnosis) + replay_failure(M12, diagnosis)
    by_package = bc.messages_by_package(stderr, CORPUS)
    assert GETRANDOM.id not in by_package
    for consumer in (M11, M12):
        cause = cause_of(stderr, consumer, bc.SCRIPT_COMPILED)
        assert (cause.cls, cause.detail) == ("replay", diagnosis.kind)
        assert consumer.label in cause.line


def test_could_not_compile_names_no_version_so_each_version_short_of_that_stage_failed() -> None:
    stderr = "error: could not compile `markup5ever` (build script) due to 2 previous errors\n"
    assert bc.cargo_failures(stderr, CORPUS, {}) == {M11.id: bc.SCRIPT_COMPILED, M12.id: bc.SCRIPT_COMPILED}
    assert bc.cargo_failures(stderr, CORPUS, {M12.id: {bc.SCRIPT_COMPILED}}) == {M11.id: bc.SCRIPT_COMPILED}
    ran = "error: failed to run custom build command for `libz-sys v1.1.33`\n"
    assert bc.cargo_failures(ran, CORPUS, {}) == {LIBZ.id: bc.SCRIPT_RAN}


def test_a_package_never_built_is_blocked_by_the_dependency_that_failed() -> None:
    native = bc.Build("native", Path("/n"), 1.0, 0, {p: {bc.BUILT} for p in CORPUS}, {}, {}, "")
    wrapped = bc.Build("empty", Path("/w"), 1.0, 101, {}, {}, {M11.id: bc.SCRIPT_COMPILED}, "")
    cause = bc.outcome(HTML.id, wrapped, native, CORPUS, {})
    assert (cause.cls, cause.detail) == ("blocked", f"by {M11.label}")
    assert bc.outcome(HTML.id, native, native, CORPUS, {}) is None
    failing_natively = bc.Build("native", Path("/n"), 1.0, 101, {}, {}, {M11.id: bc.SCRIPT_RAN}, "")
    assert bc.outcome(M11.id, wrapped, failing_natively, CORPUS, {}).cls == "native"


def script_run(target: Path, unit: str, stdout: str) -> str:
    """An old-layout build-script run in `target`: its OUT_DIR, with cargo's `output` file beside it."""
    out = target / "debug" / "build" / unit / "out"
    out.mkdir(parents=True)
    (out.parent / "output").write_text(stdout)
    return str(out)


def test_outputs_compare_what_reaches_rustc_with_out_dir_and_the_target_masked(tmp_path: Path) -> None:
    native_out = script_run(tmp_path / "n", "libz-sys-aaaa", "")
    wrapped_out = script_run(tmp_path / "w", "libz-sys-bbbb", "")
    Path(native_out, "..", "output").write_text(
        f"cargo:rustc-link-search={native_out}\ncargo:rustc-link-lib=static=z\ncargo:rustc-cfg=zng\n"
        f"cargo:include={native_out}/include\ncargo:rerun-if-changed=build.rs\n")
    Path(wrapped_out, "..", "output").write_text(
        f"cargo:rustc-link-search=native={wrapped_out}\ncargo:rustc-link-lib=static=z\ncargo:rustc-cfg=zng\n"
        f"cargo:include={wrapped_out}/include\ncargo:rerun-if-changed=build.rs\n"
        "cargo:rerun-if-changed=/policy/cratecage.toml\ncargo:warning=cratecage: a report\n")
    native = bc.Build("native", tmp_path / "n", 1.0, 0, {}, {LIBZ.id: native_out}, {}, "")
    wrapped = bc.Build("grants", tmp_path / "w", 1.0, 0, {}, {LIBZ.id: wrapped_out}, {}, "")
    assert bc.compare_outputs(native, wrapped, [LIBZ.id]) == {}

    Path(wrapped_out, "..", "output").write_text(
        f"cargo:rustc-link-search=native={wrapped_out}\ncargo:rustc-link-lib=z\ncargo:rustc-cfg=zng\n"
        f"cargo:include={wrapped_out}/include\n")
    assert bc.compare_outputs(native, wrapped, [LIBZ.id]) == {
        LIBZ.id: ["- rustc-link-lib=static=z", "+ rustc-link-lib=z"]}
