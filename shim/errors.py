"""The one exception root of cratecage, and how each kind becomes an exit code.

    CratecageError                 any failure we explain to a person; message starts with "cratecage:"
    ├── UsageError                 the command line or environment is wrong (exit 2)
    ├── policy.PolicyError         a malformed policy: file, line, key, what was expected (exit 2)
    ├── compile.argv.ReplayError   a build-dependency does not compile for wasm32-wasip1 (exit 1)
    ├── ToolchainError             the compiler cannot do what is needed (exit 3)
    │   └── ToolchainMismatch      cargo's rustc cannot be made wasm-capable; the selected one is (exit 3)
    └── ProvisionError             `toolchain install` could not finish (exit 4)

Only `shim.cli.main` turns these into exit codes and one-line messages; nothing else prints tracebacks or
calls sys.exit. Light on purpose: the pass-through path imports it.

An error that every unit of one build meets alike (a malformed policy, an unknown workspace, a compiler that
cannot target wasm) is build-wide: its `once` is an identity, and while serving cargo its message is said
once per cargo run (shim.once.report), not once per parallel unit; each unit still fails. `build_wide` on a
class makes every instance so, identified by its message; `once=` names the identity where the message
varies by unit (it names the crate that met it first).
"""

from __future__ import annotations


class CratecageError(Exception):
    """Base of every error cratecage reports. `str(err)` is the whole message, without the prefix."""

    exit_code = 1
    build_wide = False

    def __init__(self, message: str, *, hint: str | None = None, once: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.once = once if once is not None else message if self.build_wide else None

    def render(self) -> str:
        """The message and hint; a line break in them stays one, any other control character is shown
        escaped (shim.untrusted: a "\\r" or an escape sequence from a path never reaches the terminal)."""
        from shim.untrusted import shown

        text = f"cratecage: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}" if "\n" in self.message else f"; {self.hint}"
        return "\n".join(shown(line) for line in text.split("\n"))


class UsageError(CratecageError):
    exit_code = 2


class ToolchainError(CratecageError):
    exit_code = 3
    build_wide = True


class ToolchainMismatch(ToolchainError):
    pass


class ProvisionError(CratecageError):
    exit_code = 4
