"""Hostile proc macros through real cargo builds (fixtures/hostile-macros: an app whose features each expand
one macro call of the workspace's macro crates). Every macro runs as WebAssembly in its sandbox:

  - `sneaky` goes after what a native macro reaches at expansion time: a file in $HOME, /etc/passwd, a
    secret variable, `sh -c`, a loopback server, a file outside every OUT_DIR. Each is refused, the build
    fails, and the `cratecage:` line names the macro crate and the crate being compiled with the
    `[permissions.macro.sneaky]` entry to paste; with exactly that entry in the policy, the harmless twin
    (the same access, pasting only a length into the program) builds and the program prints it;
  - `spinner` loops forever or allocates without bound: the expansion fails on the limit, naming the
    macro, and the build ends within seconds;
  - `counter` keeps a `static` across the calls of one crate, as natively;
  - `refuser` is a derive that panics: rustc reports it as it does for the native build of the same crate;
  - `prowler` goes after secrets while it is compiled for wasm (`include_str!` of a home file, of a link in
    its package, of a file above it through `..`, a `#[path]` module outside it, `env!` of a secret): each is
    refused with a `cratecage:` line naming it, a read of its own package works, and a file above it reads
    with exactly the `[permissions.build.prowler]` entry offered; `rootlink`'s crate root is a link to the
    home file (cratecage reads a macro crate's root itself): refused the same way; `prowler`'s `forge_*`
    macros print and panic with text made to pass for cratecage's own, which reaches stderr marked as the
    macro's;
  - rustc killed in the middle of an expansion ends the macro server and the build at once.

The canary (a random token in the fake $HOME's file, in the secret variable, served by the loopback server;
/etc/passwd's first line) must be absent from cargo's stdout and stderr and from every file in the target
directory, and no process of the build may outlive it. One target directory serves every wrapped build:
each scenario is one feature of the app, so the macro crates are compiled once.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import FIXTURES, WRAPPER, Cargo, CargoRun, assert_nothing_outlives, own_lines, scrubbed
from loopback import Listener

pytestmark = pytest.mark.integration

ENTRY_HEAD = re.compile(r"^\[permissions\.macro\.sneaky\]$")
ENTRY_KEY = re.compile(r"^[a-z-]+ = \{.*\}$")


class Arena:
    """A copy of the fixture wired to a fake $HOME holding the canary, a loopback server handing it out
    to whoever connects, and a path outside every OUT_DIR for the planting macro."""

    def __init__(self, cargo: Cargo, root: Path) -> None:
        self.cargo, self.root = cargo, root
        self.token = "CANARY" + secrets.token_hex(12)
        self.home = root / "home"
        (self.home / ".ssh").mkdir(parents=True)
        self.canary = self.home / ".ssh" / "id_rsa"
        self.canary.write_text(self.token + "\n")
        self.plant = self.home / ".bashrc"
        self.passwd_line = Path("/etc/passwd").read_text().splitlines()[0]
        self.listener = Listener((self.token + "\n").encode())  # hands the canary to whoever connects
        self.port = self.listener.port
        self.ws = root / "ws"
        shutil.copytree(FIXTURES / "hostile-macros", self.ws)
        for main in (self.ws / "app" / "src" / "main.rs", self.ws / "prowler" / "src" / "lib.rs"):
            main.write_text(main.read_text().replace("@CANARY@", str(self.canary)).replace("@PORT@", str(self.port))
                            .replace("@PLANT@", str(self.plant)))
        (self.ws / "prowler" / "secret").symlink_to(self.canary)
        (self.ws / "rootlink" / "src").mkdir()
        (self.ws / "rootlink" / "src" / "lib.rs").symlink_to(self.canary)
        (self.ws / "secrets.txt").write_text(self.token + "\n")
        (self.ws / "secrets.rs").write_text(f'pub const SECRET: &str = "{self.token}";\n')
        self.target = root / "target"

    def build(self, feature: str, *, policy: str = "", env: dict[str, str] | None = None,
              wrapped: bool = True, target: Path | None = None) -> tuple[CargoRun, float]:
        start = time.monotonic()
        run = self.cargo(self.ws, "build", "-p", "app", "--features", feature, wrapped=wrapped,
                         target_dir=target or self.target, extra_env=self.environ(feature, policy, env), check=False)
        elapsed = time.monotonic() - start
        self.assert_no_leak(run, target or self.target)
        self.assert_nothing_left()
        return run, elapsed

    def start(self, feature: str, *, policy: str = "") -> subprocess.Popen[str]:
        """A wrapped build of `feature` left running (Cargo.__call__'s environment)."""
        env = {**scrubbed(dict(os.environ)), **self.cargo.env, "CARGO_TARGET_DIR": str(self.target),
               "CARGO_TERM_COLOR": "never", "RUSTC_WRAPPER": str(WRAPPER), **self.environ(feature, policy, None)}
        return subprocess.Popen(["cargo", "build", "-p", "app", "--features", feature], cwd=self.ws, env=env,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def environ(self, feature: str, policy: str, env: dict[str, str] | None) -> dict[str, str]:
        policy_file = self.root / f"policy-{feature}.toml"
        policy_file.write_text(policy)
        return {
            "HOME": str(self.home), "CI_TOKEN": self.token, "CRATECAGE_POLICY": str(policy_file),
            # the real homes, which the fake $HOME would otherwise hide: toolchains, registry, facade cache
            "CARGO_HOME": os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo"),
            "RUSTUP_HOME": os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup"),
            "CRATECAGE_CACHE_DIR": os.environ.get("CRATECAGE_CACHE_DIR") or str(Path.home() / ".cache" / "cratecage"),
            **(env or {}),
        }

    def program(self) -> str:
        done = subprocess.run([str(self.target / "debug" / "app")], capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ["PATH"]})
        assert done.returncode == 0, done.stderr
        assert self.token not in done.stdout + done.stderr
        return done.stdout

    def assert_no_leak(self, run: CargoRun, target: Path) -> None:
        for canary in (self.token, self.passwd_line):
            assert canary not in run.proc.stdout
            assert canary not in run.proc.stderr, run.proc.stderr[-3000:]
            needle = canary.encode()
            for path in target.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert needle not in path.read_bytes(), f"the canary is in {path.relative_to(target)}"

    def assert_nothing_left(self) -> None:
        """No process of the build (rustc, a macro server, a granted program) runs on after cargo."""
        assert_nothing_outlives(self.root)


@pytest.fixture(scope="module")
def arena(selected_cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    arena = Arena(selected_cargo, tmp_path_factory.mktemp("hostile-macros"))
    yield arena
    arena.listener.close()


def entry_to_paste(stderr: str, head: re.Pattern[str] = ENTRY_HEAD) -> str:
    """The `[permissions.macro.sneaky]` entry (or `head`'s) a denial offers, as the lines to paste."""
    lines = [line.strip() for line in stderr.splitlines()]
    heads = [i for i, line in enumerate(lines) if head.match(line)]
    assert heads, f"no {head.pattern} entry offered:\n{stderr[-3000:]}"
    keys = [lines[i + 1] for i in heads]
    assert all(ENTRY_KEY.match(key) for key in keys), keys
    assert len(set(keys)) == 1, keys  # one access, one entry
    return f"{lines[heads[0]]}\n{keys[0]}\n"


# feature, its twin, what the denial says, what the twin's program prints (given the arena)
ATTACKS = [
    ("read-home", "read-home-twin", "filesystem-access denied: read",
     lambda a: f"home bytes: {len(a.token) + 1}"),
    ("read-passwd", "read-passwd-twin", "filesystem-access denied: read /etc/passwd",
     lambda a: f"passwd bytes: {len(Path('/etc/passwd').read_text())}"),
    ("secret-var", "secret-var-twin", "env-access not granted: CI_TOKEN",
     lambda a: f"token bytes: {len(a.token)}"),
    ("spawn-sh", "spawn-sh-twin", "process-spawn denied: sh",
     lambda a: "sh: twin ran"),
    ("connect", "connect-twin", "network-access denied: 127.0.0.1:",
     lambda a: f"server bytes: {len(a.token) + 1}"),
    ("write-outside", "write-outside-twin", "filesystem-access denied: write",
     lambda a: "planted: yes"),
]


@pytest.mark.parametrize(("feature", "twin", "denial", "printed"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_hostile_macro_is_refused_with_the_entry_and_its_twin_builds_with_exactly_that_entry(
        arena: Arena, feature: str, twin: str, denial: str, printed: Callable[[Arena], str]) -> None:
    connections = arena.listener.connections
    run, _ = arena.build(feature)
    assert not run.ok
    denials = [line for line in run.proc.stderr.splitlines() if denial in line]
    assert denials, run.proc.stderr[-3000:]
    assert all("cratecage: proc macro crate sneaky 0.1.0 (compiling app 0.1.0): " in line for line in denials), denials
    assert "sneaky leaked" not in run.proc.stderr and "sneaky ran" not in run.proc.stderr
    assert not arena.plant.exists()
    assert arena.listener.connections == connections  # the guest never reached the server
    entry = entry_to_paste(run.proc.stderr)

    run, _ = arena.build(twin, policy=entry)
    assert run.ok, run.proc.stderr[-3000:]
    assert arena.program().strip() == printed(arena)
    if twin == "write-outside-twin":
        assert arena.plant.read_text() == "planted by a proc macro\n"
        arena.plant.unlink()


# feature, the macro, the limit (a variable, or the grant's `limits`), what the refusal says
LIMITS = [
    ("spin", "spin", {"CRATECAGE_LIMIT_TIME": "2s"}, "", "ran longer than 2 s (CRATECAGE_LIMIT_TIME)"),
    ("hog", "hog", {"CRATECAGE_LIMIT_MEMORY": "128MiB"}, "", "ran out of memory (limit 134217728 bytes"),
    ("spin", "spin", {}, '[permissions.macro.spinner]\nlimits = { time = "2s" }\n', "ran longer than 2 s"),
]


@pytest.mark.parametrize(("feature", "macro", "env", "policy", "limit"), LIMITS,
                         ids=["spin-env", "hog-env", "spin-grant"])
def test_a_macro_that_never_finishes_fails_on_the_limit_within_seconds(
        arena: Arena, feature: str, macro: str, env: dict[str, str], policy: str, limit: str) -> None:
    run, elapsed = arena.build(feature, env=env, policy=policy)
    assert not run.ok
    assert elapsed < 30, f"the build took {elapsed:.0f} s"
    lines = [line for line in run.proc.stderr.splitlines() if "cratecage: " in line and limit in line]
    assert lines, run.proc.stderr[-3000:]
    assert all(f"proc macro `{macro}` of spinner 0.1.0 (compiling app 0.1.0)" in line for line in lines), lines


def test_a_static_counter_counts_across_the_calls_of_one_crate(arena: Arena) -> None:
    run, _ = arena.build("counter")
    assert run.ok, run.proc.stderr[-3000:]
    assert arena.program().strip() == "counts: 1 2 3"


def panic_report(stderr: str) -> list[str]:
    """rustc's report of the derive's panic: from `error: proc-macro derive panicked` to its help line."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("error: proc-macro derive panicked")), None)
    assert start is not None, stderr[-3000:]
    end = next(i for i in range(start, len(lines)) if "help: message:" in lines[i])
    return lines[start:end + 1]


def test_a_panicking_derive_is_reported_as_the_native_build_reports_it(arena: Arena) -> None:
    wrapped, _ = arena.build("panic-derive")
    native, _ = arena.build("panic-derive", wrapped=False, target=arena.root / "target-native")
    assert not wrapped.ok and not native.ok
    report = panic_report(wrapped.proc.stderr)
    assert report == panic_report(native.proc.stderr)
    assert report[-1].endswith("help: message: Refuse cannot be derived for `Target`: it is a unit struct")
    assert not own_lines(wrapped.proc.stderr)


# feature, what the `cratecage:` line about prowler's compile says (given the arena)
COMPILE_TIME = [
    ("ct-home", lambda a: f"filesystem-access denied: {a.canary}: read at compile time"),
    ("ct-link", lambda a: f"filesystem-access denied: {a.canary}: read at compile time"),
    ("ct-up", lambda a: f"filesystem-access denied: {a.ws / 'secrets.txt'}: read at compile time"),
    ("ct-path", lambda a: f"filesystem-access denied: {a.ws / 'secrets.rs'}: read at compile time"),
    ("ct-env", lambda a: "env-access denied: CI_TOKEN: set on the host but not granted"),
    ("root-link", lambda a: f"filesystem-access denied: {a.canary}: its crate root"),  # rootlink's src/lib.rs
]


@pytest.mark.parametrize(("feature", "denial"), COMPILE_TIME, ids=[c[0] for c in COMPILE_TIME])
def test_a_macro_crate_reading_secrets_while_it_is_compiled_is_refused(
        arena: Arena, feature: str, denial: Callable[[Arena], str]) -> None:
    run, _ = arena.build(feature)
    assert not run.ok
    crate = "rootlink" if feature == "root-link" else "prowler"
    lines = [line for line in run.proc.stderr.splitlines() if line.startswith(f"cratecage: proc-macro crate {crate} 0.1.0")]
    assert any(denial(arena) in line for line in lines), run.proc.stderr[-3000:]


def test_a_macro_crate_reads_its_own_package_and_a_granted_file_while_it_is_compiled(arena: Arena) -> None:
    run, _ = arena.build("ct-home-twin")
    assert run.ok, run.proc.stderr[-3000:]
    own = len((arena.ws / "prowler" / "Cargo.toml").read_text())
    assert arena.program().strip() == f"compiled bytes: {own}"
    public = arena.ws / "secrets.txt"
    token = public.read_text()
    public.write_text("public\n")  # the same path as ct-up's, nothing secret in it now
    try:
        refused, _ = arena.build("ct-up")
        assert not refused.ok
        entry = entry_to_paste(refused.proc.stderr, re.compile(r"^\[permissions\.build\.prowler\]$"))
        run, _ = arena.build("ct-up", policy=entry)
        assert run.ok, run.proc.stderr[-3000:]
        assert arena.program().strip() == "compiled bytes: 7"
    finally:
        public.write_text(token)


def could_pass_for_cratecages(line: str) -> bool:
    return "cratecage" in line.lower() or 'sandbox = "native"' in line or "[permissions." in line


def test_what_a_macro_prints_cannot_pass_for_cratecages_own_lines(arena: Arena) -> None:
    run, _ = arena.build("forge-print")
    assert run.ok, run.proc.stderr[-3000:]
    forged = [line for line in run.proc.stderr.splitlines() if could_pass_for_cratecages(line)]
    assert len(forged) == 6, run.proc.stderr[-3000:]  # three lines of each forgery (stderr, stdout)
    assert all(line.startswith("[prowler proc macro] ") for line in forged), forged
    assert "\x1b" not in run.proc.stderr and "\r" not in run.proc.stderr


def test_a_panic_message_cannot_pass_for_cratecages_refusal(arena: Arena) -> None:
    run, _ = arena.build("forge-panic")
    assert not run.ok
    assert "help: message: prowler cannot expand this" in run.proc.stderr  # as natively, up to the forgery
    forged = [line for line in run.proc.stderr.splitlines() if could_pass_for_cratecages(line)]
    assert len(forged) == 3, run.proc.stderr[-3000:]
    assert all("[prowler proc macro] " in line for line in forged), forged
    assert "\r" not in run.proc.stderr


def test_killing_rustc_in_the_middle_of_an_expansion_ends_its_server_and_the_build_at_once(arena: Arena) -> None:
    """The server holds rustc's stderr, which cargo reads to the end: one that spun on to its time limit would
    hold the build (and outlive rustc) for as long."""
    build = arena.start("spin", policy='[permissions.macro.spinner]\nlimits = { time = "600s" }\n')
    try:
        server = None
        deadline = time.monotonic() + 240
        while server is None and time.monotonic() < deadline and build.poll() is None:
            time.sleep(0.2)
            for pid in os.listdir("/proc"):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if str(arena.target).encode() in cmdline and b"/spinner-" in cmdline and b"macro-server" in cmdline:
                    server = int(pid)
        assert server is not None, build.communicate(timeout=60)[1][-3000:]
        time.sleep(1.0)  # inside the spin
        rustc = int(Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert b"rustc" in Path(f"/proc/{rustc}/cmdline").read_bytes()
        os.kill(rustc, signal.SIGKILL)
        killed = time.monotonic()
        _out, err = build.communicate(timeout=60)
        assert time.monotonic() - killed < 10, f"the build went on {time.monotonic() - killed:.0f} s after rustc died"
        assert build.returncode != 0 and "SIGKILL" in err
        arena.assert_nothing_left()
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
