"""Fifteen crates.io proc macros expanded in the sandbox, compared token for token with their native
expansion, and proven right by the program they build (fixtures/macro-crates, versions pinned by its
Cargo.lock).

`zoo` uses serde_derive, thiserror, clap derive, async-trait, pin-project, strum, derive_more, tokio-macros,
rustversion, paste, zerocopy-derive, tracing-attributes, num_enum, displaydoc and `greet` (a darling
`FromDeriveInput` derive of the workspace). One wrapped build of it runs its tests (serde_json round trip,
Display texts, parsing, conversions, bytes, a tracing span seen by a subscriber, `#[tokio::test]` running
async-trait and pin-project) and its binary (clap parsing arguments under `#[tokio::main]`), and
`cratecage audit` must list each macro crate's expansions for zoo: a macro run natively would leave none.

The comparison: `cargo rustc -- -Zunpretty=expanded` for zoo's library, binary and test, into the wrapped
target directory and into a plain one, compared as token lists (tests/macro/rust_tokens.py). The printer
needs RUSTC_BOOTSTRAP=1, which only the members' rustc gets, through a RUSTC_WORKSPACE_WRAPPER: set for all
of cargo, it would make proc-macro2's build script (rerun-if-env-changed=RUSTC_BOOTSTRAP) rebuild every macro
crate natively with its nightly cfgs, and those would no longer be the macros the program proved.

Error spans: fixtures/macro-crates/spans has one compile error per feature (serde's flatten on a tuple
struct field, a thiserror format naming a missing field, a thiserror variant without `#[error]`); rustc's
diagnostics, carets and `-->` locations included, must read the same sandboxed as natively. A derive's panic
is test_hostile_macros.py's `test_a_panicking_derive_is_reported_as_the_native_build_reports_it`.

num_enum_derive reads the manifests (proc-macro-crate) and runs `cargo locate-project`: the policy grants
exactly that, as a project using num_enum would.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from shim.sandbox.audit import log_path

from conftest import FIXTURES, WRAPPER, Cargo, CargoRun, own_lines
from rust_tokens import first_difference, tokens

pytestmark = pytest.mark.integration

WS = FIXTURES / "macro-crates"
# the macro crate of each of the fifteen, as `cratecage audit` names it
MACRO_CRATES = ("serde_derive", "thiserror-impl", "clap_derive", "async-trait", "pin-project-internal",
                "strum_macros", "derive_more-impl", "tokio-macros", "rustversion", "paste", "zerocopy-derive",
                "tracing-attributes", "num_enum_derive", "displaydoc", "greet")
# zoo's targets, as `cargo rustc` selects each, and the macro crates each one uses
TARGETS = {"lib": ("--lib",), "bin": ("--bin", "zoo"), "test": ("--test", "proof")}
USED_BY = {"lib": set(MACRO_CRATES) - {"clap_derive", "tokio-macros"}, "bin": {"clap_derive", "tokio-macros"},
           "test": {"tokio-macros"}}
AUDIT_LINE = re.compile(r"^(?P<crate>\S+)\s+\S+\s+ok\s+[\d.]+\s+proc macro: (?P<n>\d+) expansions? for (?P<for>\S+) ")


class Zoo:
    """The fixture workspace built into two target directories: wrapped (macros in the sandbox) and plain."""

    def __init__(self, cargo: Cargo, root: Path) -> None:
        self.cargo, self.root = cargo, root
        self.policy = root / "cratecage.toml"
        self.policy.write_text(
            "[permissions.macro.num_enum_derive]\n"
            f'filesystem-access = {{ action = "permit", paths = ["{WS / "Cargo.toml"}", "{WS / "zoo" / "Cargo.toml"}"] }}\n'
            f'process-spawn = {{ action = "permit", programs = ["{cargo.env["CARGO"]}"] }}\n')
        self.bootstrap = root / "bootstrap-rustc"
        self.bootstrap.write_text('#!/bin/sh\n# unstable flags (-Zunpretty) for the members\' rustc only\n'
                                  'RUSTC_BOOTSTRAP=1 exec "$@"\n')
        self.bootstrap.chmod(0o755)
        self.targets = {"wrapped": root / "target-wrapped", "native": root / "target-native"}
        self.expanded: dict[tuple[str, str], str] = {}

    def run(self, mode: str, *args: str, extra_env: dict[str, str] | None = None, check: bool = True) -> CargoRun:
        command, *rest = args
        return self.cargo(WS, command, "--locked", *rest, wrapped=mode == "wrapped", target_dir=self.targets[mode],
                          extra_env={"CRATECAGE_POLICY": str(self.policy), **(extra_env or {})}, check=check)

    def expansion(self, target: str, mode: str) -> str:
        if (target, mode) not in self.expanded:
            run = self.run(mode, "rustc", "-p", "zoo", *TARGETS[target], "--", "-Zunpretty=expanded",
                           extra_env={"RUSTC_WORKSPACE_WRAPPER": str(self.bootstrap)})
            assert not own_lines(run.proc.stderr), run.proc.stderr[-3000:]
            self.expanded[target, mode] = run.proc.stdout
        return self.expanded[target, mode]

    def servers_for_zoo(self) -> list[str]:
        """The macro crates of each macro server's record for a compile of zoo in the wrapped target's audit
        log (shim/sandbox/audit.py), oldest first."""
        events = [json.loads(line) for line in log_path(self.targets["wrapped"]).read_text().splitlines()]
        return [e["crate"] for e in events
                if e["event"] == "run" and e.get("expansions") and e.get("consumer", "").split()[0] == "zoo"]

    def audit(self) -> dict[tuple[str, str], int]:
        """(macro crate, crate compiled) -> expansions, from `cratecage audit` of the wrapped target."""
        done = subprocess.run([str(WRAPPER), "audit", str(self.targets["wrapped"])], capture_output=True,
                              text=True, timeout=120, env=self.cargo.env)
        assert done.returncode == 0, done.stderr
        out: dict[tuple[str, str], int] = {}
        for match in filter(None, map(AUDIT_LINE.match, done.stdout.splitlines())):
            key = (match["crate"], match["for"])
            out[key] = out.get(key, 0) + int(match["n"])
        return out


@pytest.fixture(scope="module")
def zoo(selected_cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    return Zoo(selected_cargo, tmp_path_factory.mktemp("macro-crates"))


@pytest.fixture(scope="module")
def proven(zoo: Zoo) -> CargoRun:
    """zoo's tests, built and run with every macro in the sandbox."""
    run = zoo.run("wrapped", "test", "-p", "zoo")
    assert not own_lines(run.proc.stderr), run.proc.stderr[-3000:]
    return run


def test_the_program_built_with_sandboxed_macros_proves_each_expansion(zoo: Zoo, proven: CargoRun) -> None:
    assert "test result: ok. 9 passed; 0 failed" in proven.proc.stdout, proven.proc.stdout[-3000:]
    done = subprocess.run([str(zoo.targets["wrapped"] / "debug" / "zoo"), "--visitors", "3", "--mood",
                           "very-sleepy", "feed", "seal", "--fish"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'visitors=3 mood=VerySleepy action=Feed { animal: "seal", fish: true }',
        "ana gives fish: seal (polled 2 times, count 3)",
        "zoo: ok",
    ]
    refused = subprocess.run([str(zoo.targets["wrapped"] / "debug" / "zoo"), "--mood", "grumpy", "leave"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "invalid value 'grumpy' for '--mood <MOOD>'" in refused.stderr


@pytest.mark.parametrize("macro_crate", MACRO_CRATES)
def test_each_macro_crate_expanded_for_zoo_in_the_sandbox(zoo: Zoo, proven: CargoRun, macro_crate: str) -> None:
    assert zoo.audit().get((macro_crate, "zoo"), 0) >= 1
    assert "proc-macro" in proven.kinds().get(macro_crate.replace("-", "_"), set())


def diagnostics(stderr: str) -> list[list[str]]:
    """rustc's diagnostics in cargo's stderr, each from its `error` line to the blank line after it, without
    cargo's own summary lines."""
    out: list[list[str]] = []
    current: list[str] | None = None
    for line in stderr.splitlines():
        if line.startswith("error") and not line.startswith("error: could not compile"):
            current = [line]
            out.append(current)
        elif current is not None and line.strip():
            current.append(line)
        else:
            current = None
    return out


# feature, the macro crate, rustc's message, its location
SPAN_ERRORS = [
    ("serde-flatten-tuple", "serde_derive", "error: #[serde(flatten)] cannot be used on tuple structs", "7:5"),
    ("thiserror-missing-field", "thiserror-impl", "error[E0425]: cannot find value `size` in this scope", "13:13"),
    ("thiserror-no-error", "thiserror-impl", 'error: missing #[error("...")] display attribute', "22:5"),
]


@pytest.mark.parametrize(("feature", "macro_crate", "message", "location"), SPAN_ERRORS,
                         ids=[e[0] for e in SPAN_ERRORS])
def test_a_derive_rejecting_its_input_points_where_the_native_one_points(
        zoo: Zoo, proven: CargoRun, feature: str, macro_crate: str, message: str, location: str) -> None:
    # with zoo, so that the dependencies' features are zoo's and nothing is compiled again but spans
    runs = {mode: zoo.run(mode, "build", "-p", "zoo", "-p", "spans", "--features", f"spans/{feature}", check=False)
            for mode in ("native", "wrapped")}
    assert not runs["native"].ok and not runs["wrapped"].ok
    native, sandboxed = (diagnostics(runs[mode].proc.stderr) for mode in ("native", "wrapped"))
    assert native and native[0][0] == message, runs["native"].proc.stderr[-3000:]
    assert native[0][1].split() == ["-->", f"spans/src/lib.rs:{location}"]
    assert sandboxed == native
    assert not own_lines(runs["wrapped"].proc.stderr)
    assert zoo.audit().get((macro_crate, "spans"), 0) >= 1


@pytest.mark.parametrize("target", TARGETS)
def test_the_sandboxed_expansion_is_the_native_one_token_for_token(zoo: Zoo, proven: CargoRun, target: str) -> None:
    before = len(zoo.servers_for_zoo())
    native, sandboxed = zoo.expansion(target, "native"), zoo.expansion(target, "wrapped")
    assert set(zoo.servers_for_zoo()[before:]) >= USED_BY[target]  # this very expansion ran in the sandbox
    native_tokens = tokens(native)
    assert len(native_tokens) > 1000  # the expansion, not an error message
    difference = first_difference(native_tokens, tokens(sandboxed))
    assert difference is None, difference
    print(f"zoo {target}: {len(native_tokens)} tokens, text byte-identical: {native == sandboxed}")
