"""What one sandboxed run is: which crate, which directories, what it may see, what it was refused.

The runner builds a `RunContext` before instantiating a module and hands it to every host function
(shim.host.process, shim.host.observe, shim.host.probe). Denials are values (STYLE.md item 6): each refused
request appends a `Denial`, the guest gets an error it can handle, and after the run the runner reports
them all and fails the build if there were any.

What the host cannot refuse itself (a path outside the preopens fails inside the guest) the guest reports:
each report is an `Observation`, appended to `observations` by shim.host.observe, for the runner to turn
into denials with the policy.

Network connections are decided by the host as they happen (shim.host.net): `grant` says which routes
are granted, `deadline` bounds every blocking socket call (epochs never interrupt a host call), and each
permitted connection is a `Connection` in `connections`, for the audit trail.
"""

from __future__ import annotations

import math
from typing import Callable

from shim.record import factory, record

if False:  # typing only: the policy package is imported only when a policy applies
    from shim.policy import Grant


POLICY_ENTRY = "[permissions."  # how every fix that is an entry to paste starts (policy.suggest_entry)


@record(frozen=True)
class Denial:
    """One refused request: what was asked, why not, and what to do about it."""

    capability: str  # "process-spawn", "rustc-probe", "filesystem-access", ...
    target: str  # the program, path, flag, ... that was refused
    reason: str
    fix: str = ""  # a policy entry or other action that would allow it, ready to paste
    # False for what a script may legitimately do without (looking up a variable, testing whether a path
    # exists): reported with its entry, but the build goes on.
    fatal: bool = True
    # True where warn mode let it happen (reads, the environment, directives): the report says what
    # enforce mode would refuse. Warn mode never permits writes or network; programs run confined.
    permitted: bool = False
    # True where an explicit deny of the policy (the owner's, or a curated one) refused it: the script was
    # told "not found", as natively where the program finds nothing to do. Recorded in the audit log only.
    expected: bool = False

    def render(self, crate: str, version: str) -> str:
        return self.render_for(f"build script of {crate} {version}")

    def render_for(self, subject: str) -> str:
        """`cratecage: <subject>: <capability> <verb>: <target>: <reason>`, then the entry to paste. Target,
        reason and fix hold text the script chose: shown escaped (shim.untrusted), one line each."""
        from shim.untrusted import shown

        verb = ("not granted (warn mode: permitted)" if self.permitted else "denied as the policy says" if self.expected
                else "denied" if self.fatal else "not granted")
        text = f"cratecage: {subject}: {self.capability} {verb}: {shown(self.target)}: {shown(self.reason)}"
        if self.fix.startswith(POLICY_ENTRY):  # a policy entry (shim.policy.suggest, TOML-escaped): indented
            return text + "\n  to permit it, add to the policy:\n" + "\n".join(
                "    " + shown(line) for line in self.fix.split("\n"))
        return text + (f"; {shown(self.fix)}" if self.fix else "")


@record(frozen=True)
class Observation:
    """Something the guest tried, as it reported it (shim/host/abi.py, `report`): a failure, or in warn mode a
    success too. Guest data: it says what a build script attempted, never what it may do."""

    kind: str  # "fs" (a file system access) or "env" (an environment lookup)
    op: str  # fs: "read", "write", "stat" or "list" (abi.FS_OPS); env: "get"
    target: str  # fs: the absolute, normalized path; env: the variable's name
    # fs: "ENOENT", "EPERM", ... (abi.REPORTED_ERRNOS) or a number; env: "" (nothing found);
    # "OK" (abi.ACCESS_OK) for a success, which the guest reports only in warn mode
    errno: str

    @property
    def succeeded(self) -> bool:
        return self.errno == "OK"


@record(frozen=True)
class Connection:
    """One permitted TCP connection: the granted route that admitted it and the address it reached."""

    route: str  # as granted: "127.0.0.1:5432", "db.example:5432", "localhost:*"
    address: str  # the address connected to: "127.0.0.1:5432", "[::1]:5432"


@record(frozen=True)
class Spawn:
    """One program a grant let the guest run: the executable it resolved to and the argv it asked for."""

    program: str  # "/usr/bin/x86_64-linux-gnu-gcc-12"
    argv: tuple[str, ...]  # ("cc", "-c", "src/answer.c", ...), the program as the guest named it


@record(frozen=True)
class OutputRun:
    """A file of the run's own output (OUT_DIR, the temp dir) that a granted build driver ran (configure's
    `./conftest`; shim.host.spawn.output_trees), and how often: for the audit trail."""

    program: str  # the path as the driver named it
    started_by: str  # the granted program whose tree ran it ("sh", or "sh (/usr/bin/make)")
    count: int


@record
class RunContext:
    crate: str  # package name (CARGO_PKG_NAME)
    version: str  # CARGO_PKG_VERSION
    package_dir: str  # CARGO_MANIFEST_DIR: readable, and the guest's "."
    out_dir: str  # OUT_DIR: read-write
    tmp_dir: str  # per-run temp dir: read-write, std::env::temp_dir() in the guest
    env: dict[str, str]  # exactly what the guest sees
    host_env: dict[str, str]  # cargo's environment for this run (never shown to the guest)
    rustc: str  # the real rustc (cargo's $RUSTC resolved): the only program a probe may run
    sysroot: str  # that rustc's own sysroot (read-only for confined probes)
    denials: list[Denial] = factory(list)
    observations: list[Observation] = factory(list)  # distinct, capped (shim.host.observe)
    grant: Grant | None = None  # the crate's grant; None: the defaults (no network)
    deadline: float = math.inf  # time.monotonic() when the run's time limit is reached
    connections: list[Connection] = factory(list)  # permitted, in order (shim.host.net)
    spawns: list[Spawn] = factory(list)  # permitted programs, in order (shim.host.spawn)
    output_runs: list[OutputRun] = factory(list)  # the run's output that drivers ran
    # Per-run scratch space of the host's own (probe output dirs, views of granted files): never preopened,
    # never in a child's write set, in the target dir where no other run's grant reaches it
    # (shim.build.run.make_run_dir); removed with the run. "" where a caller made no run directory (tests).
    host_dir: str = ""
    # Variables every guest of this kind sees without a grant (a build script's: shim.cargo.script_env): a warn-mode
    # lookup of one is no denial.
    visible_by_default: Callable[[str], bool] = lambda name: False
    kind: str = "build"  # the policy kind of the grant: "build", or "macro" (a proc macro's, shim.macro.server)
    subject: str = ""  # how messages name the guest; "" for `build script of <crate> <version>`

    def named(self) -> str:
        return self.subject or f"build script of {self.crate} {self.version}"

    def host_scratch(self, prefix: str) -> str:
        """A fresh directory the guest and its children cannot reach, removed when the run ends."""
        if self.host_dir:
            from shim.files import fresh_dir

            return fresh_dir(self.host_dir, prefix)
        import tempfile

        return tempfile.mkdtemp(prefix=prefix)

    def deny(self, capability: str, target: str, reason: str, fix: str = "", *, fatal: bool = True,
             permitted: bool = False, expected: bool = False) -> Denial:
        denial = Denial(capability, target, reason, fix, fatal and not expected, permitted, expected)
        if denial not in self.denials:  # a retried request is one denial
            self.denials.append(denial)
        return denial
