"""The native launcher (shim/rust/fastpath) against the Python wrapper it stands in for.

Every call of a corpus goes through the native launcher's dry run (`--fastpath-dry-run`: its decision, the
argv it would exec, the journal entry it wrote) and, where it passes the call through, through the Python
wrapper with exec stubbed (REFERENCE), in the same directory with the same environment: both must exec the
same argv unchanged, with no confinement, scrubbing or version line, and write the same journal entry byte
for byte, or none. A delegated call is always right (it reaches the Python wrapper unchanged), but the cases
say which calls must pass and which must be delegated, and no build script or proc macro, however spelled,
may pass. The corpus: every rustc call of real `cargo build -vv` runs of fixtures/demo and
fixtures/crates-io on both cargo layouts, and hand-made cases for each delegation condition and spelling.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shim.cargo import rustc_args
from shim.cli import launcher
from shim.intercept import wrapper
from shim.cargo import env as cargo_env

from conftest import FIXTURES, Cargo

ROOT = Path(__file__).resolve().parents[2]
RUSTC = "/opt/toolchain/bin/rustc"  # never run: the dry run and the reference stop before any exec
CRATE_SRC = "src/lib.rs"

# The Python wrapper's decision for one call, exec and everything heavier stubbed: printed as JSON.
REFERENCE = r"""
import json, os, sys
sys.path.insert(0, sys.argv.pop(1))
from shim.intercept import confined, wrapper

out = {"chdir": None, "sandboxed": False}

def done(action, **kw):
    out.update(action=action, **kw)
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)

real_classify = wrapper.classify

def classify(args, environ=None):
    unit = real_classify(args, environ)
    out.update(kind=unit.kind, reason=unit.reason)
    if unit.kind == "build-script":
        done("build-script")
    return unit

real_chdir = os.chdir

def chdir(path):
    out["chdir"] = path
    real_chdir(path)

wrapper.classify = classify
wrapper._require_wasm_toolchain = lambda *a: out.update(sandboxed=True)
wrapper._version_with_our_line = lambda *a: done("version")
confined.run = lambda *a: done("confined")
confined.run_without_credentials = lambda *a: done("scrubbed")
os.chdir = chdir
os.execvp = lambda file, argv: done("exec", argv=list(argv), env="same")
os.execvpe = lambda file, argv, env: done("exec", argv=list(argv),
                                          env="same" if dict(env) == dict(os.environ) else "changed")
try:
    status = wrapper.run(sys.argv[1:])
except Exception as err:
    done("error", error=f"{type(err).__name__}: {err}")
done("returned", status=status)
"""


class Decision:
    def __init__(self, raw: bytes) -> None:
        fields = raw.split(b"\0")
        self.what, self.why, self.journal = fields[0].decode(), fields[1].decode(), os.fsdecode(fields[2])
        self.cmd = fields[3:]

    def __repr__(self) -> str:
        return f"Decision({self.what!r}, {self.why!r}, journal={self.journal!r})"


def build_native(directory: Path) -> Path:
    """The native launcher built from this checkout's source into `directory`, its Python launcher beside it."""
    path = directory / "cratecage"
    launcher.write_launcher(str(path), sys.executable)
    if not Path(f"{path}-py").is_file():
        pytest.fail("the native launcher did not build (is rustc on PATH?)")
    return path


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_native(tmp_path_factory.mktemp("fastpath"))


def base_env() -> dict[str, str]:
    """What every case starts from: no variable of the machine's own that would decide for it."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LC_ALL": "C.UTF-8"}


def words(argv: list[str | bytes]) -> list[bytes]:
    return [os.fsencode(a) for a in argv]


def dry_run(native: Path, argv: list[str | bytes], env: dict[str, str], cwd: Path) -> Decision:
    done = subprocess.run([str(native), "--fastpath-dry-run", *words(argv)], env=env, cwd=cwd,
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return Decision(done.stdout)


def reference(argv: list[str | bytes], env: dict[str, str], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-S", "-c", REFERENCE, str(ROOT), *words(argv)], env=env, cwd=cwd,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def journal_files(tree: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in tree.rglob("*.rlib.args")}


def compare(native: Path, argv: list[str | bytes], env: dict[str, str], cwd: Path, tree: Path) -> Decision:
    """Run one call both ways (module docstring); the native decision."""
    decision = dry_run(native, argv, env, cwd)
    if decision.what == "delegate":
        assert decision.cmd == [os.fsencode(f"{native}-py"), *words(argv)], decision
        return decision
    assert decision.what == "pass-through" and decision.cmd == words(argv), decision
    written = Path(decision.journal).read_bytes() if decision.journal else None
    if decision.journal:
        os.unlink(decision.journal)
    before = journal_files(tree)
    ref = reference(argv, env, cwd)
    changed = {p: b for p, b in journal_files(tree).items() if before.get(p) != b}
    assert ref["action"] == "exec" and ref["env"] == "same", (decision, ref)
    assert [os.fsencode(a) for a in ref["argv"]] == words(argv), ref
    assert ref["chdir"] is None and not ref["sandboxed"], ref
    assert ref["kind"] in ("host-library", "other"), ref
    if decision.journal:
        assert ref["kind"] == "host-library", ref
        assert changed == {decision.journal: written}
    else:
        assert changed == {}, (decision, ref)
    return decision


def test_the_tables_are_the_python_ones(native: Path) -> None:
    lines = subprocess.run([str(native), "--fastpath-tables"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    flags = [line.split()[1:] for line in lines if line.startswith("flag ")]
    assert flags == [[",".join(f.names), str(f.takes_value).lower()] for f in rustc_args.FLAGS]
    table = dict(line.split(" ", 1) for line in lines if not line.startswith("flag "))
    assert set(table["credential-words"].split(",")) == wrapper.CREDENTIAL_WORDS
    assert set(table["key-qualifiers"].split(",")) == wrapper.KEY_QUALIFIERS
    assert table["compile-env"].split(",") == list(cargo_env.COMPILE_ENV)
    assert table["python-launcher"] == f"{native}-py"


def test_a_flag_new_to_the_python_table_reaches_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The native launcher reads the flag table generated from rustc_args.FLAGS; a flag it has no rule for
    sends the call to Python, whatever it takes."""
    monkeypatch.setattr(rustc_args, "FLAGS", (*rustc_args.FLAGS, rustc_args.Flag(("--new-flag",), True, "new"),
                                              rustc_args.Flag(("--new-switch",), False)))
    own = build_native(tmp_path)
    for extra in (["--new-flag", "x"], ["--new-flag=lib.rs"], ["--new-switch"]):
        decision = dry_run(own, library(*extra), base_env(), tmp_path)
        assert (decision.what, decision.why) == ("delegate", extra[0].partition("=")[0]), decision


# -- hand-made cases ---------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A workspace with a target directory of each layout, cargo's build lock in its profile."""
    (tmp_path / "src").mkdir()
    (tmp_path / CRATE_SRC).write_text("pub fn f() {}\n")
    (tmp_path / "target" / "debug" / "deps").mkdir(parents=True)
    (tmp_path / "target" / "debug" / ".cargo-lock").write_text("")
    (tmp_path / "newtarget" / "debug" / "build" / "sample" / "0123abcd" / "out").mkdir(parents=True)
    (tmp_path / "newtarget" / "debug" / ".cargo-build-lock").write_text("")
    (tmp_path / "unlocked" / "debug" / "deps").mkdir(parents=True)
    return tmp_path


def library(*extra: str, name: str = "sample", out: str = "target/debug/deps", src: str = CRATE_SRC,
            types: tuple[str, ...] = ("--crate-type", "lib"), emit: str = "--emit=dep-info,metadata,link") -> list[str]:
    """A library compile as cargo spells it, and `extra` at the end."""
    return [RUSTC, "--crate-name", name, "--edition=2021", src, "--error-format=json",
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat", *types, emit, "-C", "embed-bitcode=no",
            "-C", "debuginfo=2", "-C", "metadata=0123abcd", "-C", "extra-filename=-0123abcd", "--out-dir", out,
            "-L", "dependency=target/debug/deps", *extra]


def replace(argv: list[str], old: list[str], new: list[str]) -> list[str]:
    i = next(i for i in range(len(argv)) if argv[i:i + len(old)] == old)
    return argv[:i] + new + argv[i + len(old):]


CARGO_VARS = {"CARGO": "/opt/toolchain/bin/cargo", "CARGO_CRATE_NAME": "sample", "CARGO_PKG_NAME": "sample",
              "CARGO_PKG_VERSION": "0.1.0", "CARGO_MANIFEST_DIR": "/work/sample", "CARGO_PRIMARY_PACKAGE": "1",
              "CARGO_PKG_AUTHORS": "Ann <ann@example.org>:Bo=Bob", "CARGO_PKG_DESCRIPTION": "naïve\nlines = yes"}

PASS = "pass-through"
JOURNAL = "journal"  # passes through after writing a journal entry
PASSES: dict[str, tuple[list[str | bytes], dict[str, str], str]] = {
    "a host library": (library(), CARGO_VARS, JOURNAL),
    "--crate-type=lib": (library(types=("--crate-type=lib",)), {}, JOURNAL),
    "--crate-type lib,rlib": (library(types=("--crate-type", "lib,rlib")), {}, JOURNAL),
    "--crate-type rlib twice": (library(types=("--crate-type", "rlib", "--crate-type=lib")), {}, JOURNAL),
    "no --emit (links)": (library(emit="-O"), {}, JOURNAL),
    "--emit=metadata (cargo check)": (library(emit="--emit=dep-info,metadata"), {}, PASS),
    "--emit separate": (library("--emit", "metadata", emit="-g"), {}, PASS),
    "-Cextra-filename attached": (replace(library(), ["-C", "extra-filename=-0123abcd"], ["-Cextra-filename=-ff"]),
                                  {}, JOURNAL),
    "--codegen=extra-filename": (library("--codegen=extra-filename=-last"), {}, JOURNAL),
    "--codegen extra-filename, no value": (library("--codegen", "extra-filename"), {}, JOURNAL),
    "-C without a value": (library("-C", "prefer-dynamic", "-Copt-level=3"), {}, JOURNAL),
    "-L crate= and -Ldependency=": (library("-Lcrate=/x", "-Ldependency=/y"), {}, JOURNAL),
    "--extern forms": (library("--extern", "a=/x/liba.rlib", "--extern=priv:b=/x/libb.rmeta", "--extern", "proc_macro"),
                       {}, JOURNAL),
    "--target triple": (library("--target", "x86_64-unknown-linux-gnu"), {}, PASS),
    "--target spec file": (library("--target=/specs/my-target.json"), {}, PASS),
    "absolute input outside the workspace": (library(src="/registry/src/sample-0.1.0/src/lib.rs"), CARGO_VARS,
                                             JOURNAL),
    "the new layout": (library(out="newtarget/debug/build/sample/0123abcd/out"), {}, JOURNAL),
    "no build lock (the out-dir's shape)": (library(out="unlocked/debug/deps"), {}, JOURNAL),
    "no build lock, the new layout's shape": (library(out="unlocked/debug/build/sample/0123abcd/out"), {}, JOURNAL),
    "an out-dir with .. and //": (library(out="target/../target//debug/./deps/"), {}, JOURNAL),
    "an absolute out-dir": (library(out="{tree}/target/debug/deps"), {}, JOURNAL),
    "lint, cfg, verbose and -Z flags": (library("-v", "-Dwarnings", "--cfg", "feature=\"std\"", "-Zshare-generics",
                                                "--check-cfg", "cfg(docsrs)", "--cap-lints", "allow", "-g", "-O"),
                                        {}, JOURNAL),
    "a flag value that looks like -l": (library("--cfg", "-lfoo", "-A", "-lbar"), {}, JOURNAL),
    "bytes that are not UTF-8": (library(b"--cfg=caf\xe9", b"-Cmetadata=\xff"), {}, JOURNAL),
    "a rustc-named program": (["/opt/bin/rustc-1.80.exe", *library()[1:]], {}, JOURNAL),
    "variables named nearly like credentials": (library(), {"KEYBOARD": "x", "KEY_ID": "1", "TOKENIZER_DIR": "/t",
                                                            "CRATECAGE_TRACE": "", "MONKEY_API": "x"}, JOURNAL),
}


@pytest.mark.parametrize("case", list(PASSES))
def test_plain_calls_pass_through_as_the_python_wrapper_would(native: Path, tree: Path, case: str) -> None:
    argv, extra, expected = PASSES[case]
    argv = [a.replace("{tree}", str(tree)) if isinstance(a, str) else a for a in argv]
    decision = compare(native, argv, {**base_env(), **extra}, tree, tree)
    assert decision.what == "pass-through", decision
    assert bool(decision.journal) == (expected == JOURNAL), decision


def test_an_unchanged_journal_entry_is_not_rewritten(native: Path, tree: Path) -> None:
    env = {**base_env(), **CARGO_VARS}
    first = dry_run(native, library(), env, tree)
    before = os.stat(first.journal)
    second = dry_run(native, library(), env, tree)
    after = os.stat(second.journal)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    changed = dry_run(native, library(), {**env, "CARGO_PKG_VERSION": "0.1.1"}, tree)
    assert os.stat(changed.journal).st_ino != before.st_ino
    assert b"\0CARGO_PKG_VERSION=0.1.1\0" in Path(changed.journal).read_bytes()
    assert oct(os.stat(changed.journal).st_mode & 0o777) == oct(0o644)
    assert [p.name for p in Path(changed.journal).parent.iterdir()] == [Path(changed.journal).name]


DELEGATED: dict[str, tuple[list[str | bytes], dict[str, str]]] = {
    "a binary": (library(types=("--crate-type", "bin")), {}),
    "a cdylib": (library(types=("--crate-type=cdylib",)), {}),
    "a dylib": (library(types=("--crate-type", "lib,dylib")), {}),
    "a staticlib": (library(types=("--crate-type", "staticlib")), {}),
    "no crate type": (library(types=()), {}),
    "an empty crate type": (library(types=("--crate-type=",)), {}),
    "a crate type with spaces": (library(types=("--crate-type", "lib, rlib")), {}),
    "--test": (library("--test"), {}),
    "-vV": ([RUSTC, "-vV"], {}),
    "--version": ([RUSTC, "--version"], {}),
    "-V in a compile": (library("-V"), {}),
    "--print": (library("--print", "cfg"), {}),
    "--print=": ([RUSTC, "-", "--crate-name", "___", "--print=file-names", "--crate-type", "lib"], {}),
    "--explain": ([RUSTC, "--explain", "E0001"], {}),
    "-h": ([RUSTC, "-h"], {}),
    "no input": (library(src="-O"), {}),
    "stdin input": (library(src="-"), {}),
    "two inputs": (library("other.rs"), {}),
    "an empty input": (library(src=""), {}),
    "@argfile": ([RUSTC, "@target/args"], {}),
    "@argfile as a value": (library("--cfg", "@x"), {}),
    "-l foo": (library("-l", "foo"), {}),
    "-lfoo": (library("-lfoo"), {}),
    "-l static=foo": (library("-l", "static=foo"), {}),
    "-L native=": (library("-L", "native=/opt/lib"), {}),
    "-Lfoo": (library("-Lfoo"), {}),
    "-L all=": (library("-L", "all=/x"), {}),
    "-L framework=": (library("-Lframework=/x"), {}),
    "-L dependency without =": (library("-L", "dependency"), {}),
    "OUT_DIR": (library(), {"OUT_DIR": "/t/build/sample-1/out"}),
    "a compile started by a build script": (library(), {"CARGO_CFG_TARGET_ARCH": "x86_64"}),
    "the trace": (library(), {"CRATECAGE_TRACE": "/tmp/trace.jsonl"}),
    "an inner wrapper": (library(), {"CRATECAGE_WRAPPER": "sccache"}),
    "an empty inner wrapper": (library(), {"CRATECAGE_WRAPPER": ""}),
    "CARGO_REGISTRY_TOKEN": (library(), {"CARGO_REGISTRY_TOKEN": "t"}),
    "GITHUB_TOKEN": (library(), {"GITHUB_TOKEN": "t"}),
    "AWS_SECRET_ACCESS_KEY": (library(), {"AWS_SECRET_ACCESS_KEY": "t"}),
    "db_password (lower case)": (library(), {"db_password": "t"}),
    "SSH_KEY": (library(), {"DEPLOY_SSH_KEY": "t"}),
    "a name that is not ASCII": (library(), {"ſECRET": "t"}),
    "an unknown flag": (library("--no-such-flag"), {}),
    "an unknown short flag": (library("-gC", "opt-level=3"), {}),
    "an abbreviated flag": (library("--crate-typ", "lib"), {}),
    "--": (library("--"), {}),
    "a value on a flag that takes none": (library("--verbose=1"), {}),
    "a flag without its value": (library("--out-dir"), {}),
    "a codegen key with a space": (library("-C", " extra-filename=-x"), {}),
    "an emit kind with a space": (library(emit="--emit= link"), {}),
    "a crate name with a slash": (library(name="a/b"), {}),
    "an extra-filename with a slash": (library("-Cextra-filename=/x"), {}),
    "a host library without --out-dir": (replace(library(), ["--out-dir", "target/debug/deps"], []), {}),
    "a workspace wrapper before rustc": (["/usr/bin/clippy-driver", *library()], {"CARGO": "/bin/cargo"}),
    "not rustc": (["/usr/bin/rustdoc", *library()[1:]], {}),
    "a command": (["--help"], {}),
    "a dash-named program": (["-x/rustc", *library()[1:]], {}),
    "nothing at all": ([], {}),
}


@pytest.mark.parametrize("case", list(DELEGATED))
def test_every_doubt_reaches_the_python_wrapper(native: Path, tree: Path, case: str) -> None:
    argv, extra = DELEGATED[case]
    decision = dry_run(native, argv, {**base_env(), **extra}, tree)
    assert decision.what == "delegate", decision
    assert decision.cmd == [os.fsencode(f"{native}-py"), *words(argv)]
    assert journal_files(tree) == {}


# Build scripts and proc macros in every spelling rustc accepts for the crate type (and some it does not).
SANDBOXED_TYPES = [
    ("--crate-type", "bin"), ("--crate-type=bin",), ("--crate-type", "proc-macro"), ("--crate-type=proc-macro",),
    ("--crate-type", "lib", "--crate-type", "proc-macro"), ("--crate-type", "proc-macro", "--crate-type=lib"),
    ("--crate-type", "lib,proc-macro"), ("--crate-type=rlib,proc-macro",), ("--crate-type", "proc-macro,lib"),
    ("--crate-type", "bin,lib"), ("--crate-type", "lib,bin"), ("--crate-type", " proc-macro"),
    ("--crate-type", "proc-macro "), ("--crate-type", "lib=proc-macro"), ("--crate-type", "proc-macro=lib"),
    ("--crate-type", "lib,,proc-macro"), ("--crate-type", "lib", "--crate-type="),
]


@pytest.mark.parametrize("types", SANDBOXED_TYPES, ids=" ".join)
@pytest.mark.parametrize("emit", ["--emit=dep-info,link", "--emit=link", "-O", "--emit=metadata"])
def test_a_build_script_or_proc_macro_always_reaches_python(native: Path, tree: Path, types: tuple[str, ...],
                                                            emit: str) -> None:
    for name in ("build_script_build", "build_script_main", "derive_hello"):
        argv = library(name=name, types=types, emit=emit)
        for env in ({}, CARGO_VARS):
            decision = dry_run(native, argv, {**base_env(), **env}, tree)
            assert decision.what == "delegate", (argv, decision)


# -- real cargo calls --------------------------------------------------------------------------------------

RUNNING = re.compile(r"^\s+Running `(.*)`$")


def cargo_calls(stderr: str, rustc: str) -> list[tuple[dict[str, str], list[str]]]:
    """The rustc calls of a `cargo build -vv` log: (the variables cargo set, argv)."""
    calls = []
    for line in stderr.splitlines():
        m = RUNNING.match(line)
        if not m:
            continue
        parts = shlex.split(m.group(1))
        env = {}
        while parts and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", parts[0]):
            name, _, value = parts.pop(0).partition("=")
            env[name] = value
        if len(parts) > 1 and os.path.basename(parts[1]) == os.path.basename(rustc):
            parts = parts[1:]  # after RUSTC_WRAPPER
        if parts and os.path.basename(parts[0]) == os.path.basename(rustc):
            calls.append((env, parts))
    return calls


@pytest.mark.integration
@pytest.mark.parametrize("fixture", ["demo", "crates-io"])
def test_real_cargo_calls_match_the_python_wrapper(native: Path, cargo: Cargo, tmp_path: Path, fixture: str) -> None:
    workspace = FIXTURES / fixture
    target = tmp_path / "target"
    run = cargo(workspace, "build", "--locked", "-vv", wrapped=False, target_dir=target)
    calls = cargo_calls(run.proc.stderr, cargo.env["RUSTC"])
    assert len(calls) > 3, run.proc.stderr[-2000:]
    shutil.rmtree(target / "cratecage", ignore_errors=True)
    decided: dict[str, set[str]] = {}
    for cargo_vars, argv in calls:
        args = rustc_args.parse(argv[1:])
        cwd = Path(cargo_vars["CARGO_MANIFEST_DIR"]) if args.inputs and os.path.isabs(args.inputs[0]) else workspace
        env = {**base_env(), **{k: v for k, v in cargo.env.items() if k != "RUSTC_WRAPPER"}, **cargo_vars}
        decision = compare(native, [cargo.env["RUSTC"], *argv[1:]], env, cwd, target)
        kind = "journal" if decision.journal else decision.what
        decided.setdefault(kind, set()).add(args.crate_name or "?")
        if decision.what == "pass-through":
            assert not {"bin", "proc-macro"} & set(args.crate_types) and not args.test
    assert decided.get("journal"), decided  # build dependencies (gen-consts, serde's) were journaled natively
    assert "build_script_build" in decided["delegate"]


@pytest.mark.integration
def test_a_cargo_build_through_the_native_launcher(native: Path, cargo: Cargo, tmp_path: Path) -> None:
    """fixtures/demo built with the native launcher as RUSTC_WRAPPER, the trace off so it decides: the same
    program as through the Python launcher alone, Python reached only by what needs it."""
    own = build_native(tmp_path)
    log = tmp_path / "delegated.log"
    py = Path(f"{own}-py")
    py.rename(f"{py}.real")
    py.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {py}.real "$@"\n')
    py.chmod(0o755)
    run = cargo(FIXTURES / "demo", "build", "-vv", wrapped=False, target_dir=tmp_path / "target",
                extra_env={"RUSTC_WRAPPER": str(own)})
    app = subprocess.run([str(tmp_path / "target" / "debug" / "app")], capture_output=True, text=True, check=True)
    assert "build script ran as wasm: true" in app.stdout and "hello from Greeter" in app.stdout
    delegated = log.read_text().splitlines()
    rustc_calls = len(cargo_calls(run.proc.stderr, cargo.env["RUSTC"]))
    assert any("build_script_build" in c for c in delegated) and any("derive_hello" in c for c in delegated)
    assert not any("--crate-name gen_consts" in c and "--crate-type lib" in c for c in delegated)
    assert len([c for c in delegated if "--crate-name" in c]) < rustc_calls
    assert list((tmp_path / "target").rglob("libgen_consts-*.rlib.args"))


def test_commands_and_delegated_calls_behave_as_before(native: Path, tmp_path: Path) -> None:
    env = base_env()
    help_text = subprocess.run([str(native), "--help"], capture_output=True, text=True, env=env)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: cratecage")
    version = subprocess.run([str(native), "version"], capture_output=True, text=True, env=env)
    assert version.stdout.strip() == __import__("shim").VERSION_LINE
    (tmp_path / CRATE_SRC).parent.mkdir()
    (tmp_path / CRATE_SRC).write_text("")
    for argv in ([str(tmp_path / "rustc"), "--version"], [str(tmp_path / "rustc"), *library(out=".")[1:]]):
        missing = subprocess.run([str(native), *argv], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert missing.returncode == 2 and missing.stderr.startswith("cratecage: cannot run"), missing.stderr
        assert "Traceback" not in missing.stderr and len(missing.stderr.splitlines()) == 1
