"""What one sandboxed run is: which crate, which directories, what it may see, what it was refused.

The runner builds a `RunContext` before instantiating a module and hands it to every host function
(shim.host_process, shim.probe). Denials are values (STYLE.md item 6): each refused request appends a
`Denial`, the guest gets an error it can handle, and after the run the runner reports them all and fails
the build if there were any.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Denial:
    """One refused request: what was asked, why not, and what to do about it."""

    capability: str  # "process-spawn", "rustc-probe", "filesystem-access", ...
    target: str  # the program, path, flag, ... that was refused
    reason: str
    fix: str = ""  # a policy entry or other action that would allow it, ready to paste

    def render(self, crate: str, version: str) -> str:
        text = f"cratecage: build script of {crate} {version}: {self.capability} denied: {self.target}: {self.reason}"
        return text + (f"; {self.fix}" if self.fix else "")


@dataclass
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
    denials: list[Denial] = field(default_factory=list)

    def deny(self, capability: str, target: str, reason: str, fix: str = "") -> Denial:
        denial = Denial(capability, target, reason, fix)
        self.denials.append(denial)
        return denial
