"""Which workspace owns this build, and so its policy?

rustc and build scripts of registry crates run in the dependency's own directory, so their working
directory says nothing about the project, and a dependency's own manifest must never be read as the
policy (issue 9, class C). The project is where the user started cargo: the outermost cargo process among
our ancestors, its working directory, its `-C <dir>` (nightly: cargo changes there before anything else)
and its `--manifest-path`. From there the workspace root is the nearest ancestor whose Cargo.toml has a
`[workspace]` table, else the nearest Cargo.toml's directory, as cargo decides it.

A process is cargo when it *is* the binary cargo says performs the build: cargo puts its own
`current_exe` in `CARGO` for rustc and build scripts, and the ancestor's executable (/proc/<pid>/exe) is
the same file (device and inode: a `cargo-1.95` link, a copy under any name, rustup's proxy after its
exec all match). A process whose argv[0] is `cargo` counts too (CARGO unset: `cratecage` run by hand
under a cargo subcommand). Ancestors come from /proc (~1 ms; importing psutil costs ~15 ms on every
build-script run), or psutil where there is no /proc, through the same `Proc` records and rules.

There is no fallback to the current directory: where no cargo is found, or its directory cannot be
read, `WorkspaceUnknown` stops the build and says what to set. `CRATECAGE_WORKSPACE_ROOT` (absolute)
names the root instead of the search (tests, unusual launchers); an absolute `CRATECAGE_POLICY` needs no
root at all (`workspace_root_if_known`). The runner pins both for the programs a build script starts
(`child_env`), so a nested cargo cannot bring its own workspace, and with it its own policy.
"""

from __future__ import annotations

import os
from pathlib import Path

if False:  # typing only: a confined compile (shim.intercept.confined) imports this module on every call
    from typing import Final, Mapping

from shim.errors import UsageError
from shim.record import record

ROOT_ENV: Final = "CRATECAGE_WORKSPACE_ROOT"
POLICY_ENV: Final = "CRATECAGE_POLICY"  # shim.policy.sources.POLICY_ENV, without importing the policy package
_CARGO_NAMES: Final = frozenset({"cargo", "cargo.exe"})
# cargo's top-level options that take a separate value, so that value is not read as the subcommand.
_GLOBAL_VALUE_OPTIONS: Final = frozenset({"--color", "--config", "-Z", "--explain"})


class WorkspaceUnknown(UsageError):
    """The workspace of this build (and so its policy) cannot be determined."""


@record(frozen=True)
class Proc:
    """One process of the ancestor chain: argv, working directory (None: unreadable) and the identity
    (st_dev, st_ino) of its executable (None: unreadable)."""

    cmdline: tuple[str, ...]
    cwd: str | None
    exe: tuple[int, int] | None


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _proc_ancestors(pid: int) -> list[Proc] | None:
    """`pid` and its ancestors from /proc, innermost first; None where /proc cannot say. An ancestor whose
    cwd or exe is unreadable (another user's) is kept with None there: skipping it could make an inner
    cargo look outermost."""
    chain: list[Proc] = []
    try:
        while pid > 0:
            base = f"/proc/{pid}"
            with open(f"{base}/cmdline", "rb") as fh:
                cmdline = tuple(w.decode("utf-8", "surrogateescape") for w in fh.read().split(b"\0") if w)
            try:
                cwd: str | None = os.readlink(f"{base}/cwd")
            except OSError:
                cwd = None
            chain.append(Proc(cmdline, cwd, _file_id(f"{base}/exe")))
            with open(f"{base}/stat", "rb") as fh:
                stat = fh.read()
            pid = int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError):
        return chain or None
    return chain


def _psutil_ancestors(pid: int) -> list[Proc]:
    """The same records from psutil, for systems without /proc."""
    import psutil

    chain: list[Proc] = []
    try:
        proc: psutil.Process | None = psutil.Process(pid)
    except psutil.Error:
        return chain
    while proc is not None:
        try:
            cmdline = tuple(proc.cmdline()) or (proc.name(),)
        except psutil.Error:
            break
        try:
            cwd: str | None = proc.cwd()
        except psutil.Error:
            cwd = None
        try:
            exe = _file_id(proc.exe())
        except psutil.Error:
            exe = None
        chain.append(Proc(cmdline, cwd, exe))
        try:
            proc = proc.parent()
        except psutil.Error:
            break
    return chain


def ancestors(pid: int) -> list[Proc]:
    chain = _proc_ancestors(pid)
    return chain if chain is not None else _psutil_ancestors(pid)


def is_cargo(proc: Proc, cargo_id: tuple[int, int] | None) -> bool:
    """The process runs the binary `CARGO` names, or calls itself cargo."""
    if cargo_id is not None and proc.exe == cargo_id:
        return True
    return bool(proc.cmdline) and os.path.basename(proc.cmdline[0]) in _CARGO_NAMES


def outermost_cargo(chain: list[Proc], cargo_id: tuple[int, int] | None) -> Proc | None:
    """The cargo the user started: the outermost one (a build script may run another cargo inside)."""
    found = None
    for proc in chain:
        if is_cargo(proc, cargo_id):
            found = proc
    return found


def start_of(cargo: Proc) -> Path | None:
    """Where `cargo`'s command line points: its cwd joined with `--manifest-path` (a file). None when its
    cwd is unreadable. Nightly's `-C <dir>` is skipped, never applied: cargo `chdir`s there before anything
    else, so the cwd /proc shows is already `<dir>` (applying it again would land in `<dir>/<dir>`, perhaps a
    dependency's package)."""
    if cargo.cwd is None:
        return None
    here = Path(cargo.cwd)
    manifest: str | None = None
    words = list(cargo.cmdline[1:])
    subcommand_seen = False
    i = 0
    while i < len(words):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else None
        if word == "--":
            break
        if word == "--manifest-path" and following is not None:
            manifest, i = following, i + 2
            continue
        if word.startswith("--manifest-path="):
            manifest = word.split("=", 1)[1]
        elif not subcommand_seen:
            if word == "-C" and following is not None:
                i += 2  # its value is no subcommand
                continue
            if word.startswith("-C") and not word.startswith("--"):
                pass
            elif word in _GLOBAL_VALUE_OPTIONS:
                i += 1
            elif not word.startswith(("-", "+")):
                subcommand_seen = True
        i += 1
    return Path(os.path.normpath(here / manifest)) if manifest else Path(os.path.normpath(here))


def _has_workspace_table(manifest: Path) -> bool:
    """Whether this Cargo.toml defines a workspace, as cargo reads it: a top-level `workspace` table in any
    TOML spelling (`[workspace]`, `[ workspace ] # note`, `workspace.members = [...]`, an inline table).
    A manifest that does not parse is no workspace root here; cargo itself will reject it."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return isinstance(data.get("workspace"), dict)


def workspace_root_from(start: Path) -> Path:
    """The workspace root for a directory (or a manifest path) inside a project."""
    here = start if start.is_dir() else start.parent
    nearest: Path | None = None
    for directory in (here, *here.parents):
        manifest = directory / "Cargo.toml"
        if manifest.is_file():
            nearest = nearest or directory
            if _has_workspace_table(manifest):
                return directory
    return nearest or here


def _unknown(environ: Mapping[str, str], why: str) -> WorkspaceUnknown:
    crate = environ.get("CARGO_PKG_NAME")
    whose = f" for `{crate}`" if crate else ""
    return WorkspaceUnknown(
        f"cannot tell which workspace this build belongs to, so there is no policy to apply{whose}: {why}",
        hint=f"set {ROOT_ENV} to the absolute path of your workspace root (the directory of its top "
             f"Cargo.toml), or {POLICY_ENV} to the absolute path of the policy file",
        once=f"workspace unknown: {why}")  # every unit meets it: said once per cargo run (shim.once)


def find_workspace_root(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> Path:
    """The root of the workspace the user built; raises WorkspaceUnknown rather than guess."""
    named = environ.get(ROOT_ENV)
    if named:
        if not os.path.isabs(named):
            raise UsageError(f"{ROOT_ENV} must be an absolute path (the build's commands run in other "
                             f"directories)", hint=f"set {ROOT_ENV} to the absolute path of your workspace root",
                             once=f"{ROOT_ENV} relative")
        return Path(named)
    cargo_path = environ.get("CARGO")
    chain = ancestors(pid or os.getppid())  # from the parent: this process is never the build's cargo
    cargo = outermost_cargo(chain, _file_id(cargo_path) if cargo_path else None)
    if cargo is None:
        raise _unknown(environ, "no ancestor process is the cargo that runs it (none is $CARGO or named cargo)")
    start = start_of(cargo)
    if start is None:
        raise _unknown(environ, "the working directory of the cargo that runs it is unreadable")
    return workspace_root_from(start)


def offline_requested(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> bool:
    """Whether a cargo running this build was told to stay off the network on its command line (`--offline`,
    `--frozen`, `--config net.offline=true`): cargo passes none of that on to rustc or build scripts (nor
    sets CARGO_NET_OFFLINE), and a `cargo metadata` of cratecage's (shim.compile.wasm_graph) reads only the config
    files. Any cargo of the chain counts, a nested one too."""
    cargo_path = environ.get("CARGO")
    cargo_id = _file_id(cargo_path) if cargo_path else None
    return any(is_cargo(proc, cargo_id) and argv_offline(proc.cmdline[1:])
               for proc in ancestors(pid or os.getppid()))


def argv_offline(words: tuple[str, ...] | list[str]) -> bool:
    """Whether cargo's arguments `words` (after its name) ask for no network; a program's own arguments
    after `--` are not cargo's."""
    for i, word in enumerate(words):
        if word == "--":
            return False
        if word in ("--offline", "--frozen"):
            return True
        value = words[i + 1] if word == "--config" and i + 1 < len(words) else \
            word[len("--config="):] if word.startswith("--config=") else None
        if value is not None and "offline" in value and "true" in value.replace(" ", ""):
            return True
    return False


def policy_named_absolutely(environ: Mapping[str, str]) -> bool:
    return os.path.isabs(environ.get(POLICY_ENV) or "")


def workspace_root_if_known(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The workspace root, or None where it cannot be determined and an absolute CRATECAGE_POLICY makes
    it unnecessary; raises WorkspaceUnknown otherwise."""
    try:
        return find_workspace_root(environ)
    except WorkspaceUnknown:
        if policy_named_absolutely(environ):
            return None
        raise


def root_for_command(environ: Mapping[str, str] = os.environ) -> Path:
    """For the commands a person runs in their project (`policy check`, `init`): the override, else the
    workspace of the current directory. Never used for a build (see the module docstring)."""
    if environ.get(ROOT_ENV):
        return find_workspace_root(environ)
    return workspace_root_from(Path(os.getcwd()))


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What a program started for a build script gets in place of any CRATECAGE_* it asked for: this
    build's workspace root and policy, absolute, so a cratecage under a nested cargo reads the same
    policy whatever the child's cwd, argv or environment request. Where the root is unknown (no policy
    was read, so nothing was granted) the child gets none, and a cratecage under it searches its own
    ancestors, which lead to the same outermost cargo, or refuses."""
    out: dict[str, str] = {}
    try:
        root: Path | None = find_workspace_root(environ)
        out[ROOT_ENV] = str(root)
    except WorkspaceUnknown:
        root = None
    named = environ.get(POLICY_ENV)
    if named and (root is not None or os.path.isabs(named)):
        out[POLICY_ENV] = str(Path(root or "/", named))
    return out


CURATED_TOML: Final = Path(__file__).resolve().parent.parent / "policy" / "curated.toml"  # shim/policy/


def policy_may_apply(kind: str, crate: str, environ: Mapping[str, str]) -> bool:
    """Cheap test (no policy package: ~25 ms of imports) of whether any policy source exists for this build
    or a curated default names this crate. False means the defaults alone. Raises WorkspaceUnknown where
    the workspace cannot be told: never the defaults by accident."""
    names = {crate, crate.replace("-", "_"), crate.replace("_", "-")}
    try:
        curated = CURATED_TOML.read_text()
    except OSError:
        return True
    if any(f"[permissions.{kind}.{n}]" in curated for n in names) or environ.get(POLICY_ENV):
        return True
    root = find_workspace_root(environ)
    if (root / "cratecage.toml").exists():
        return True
    try:
        return "permissions" in (root / "Cargo.toml").read_text()
    except OSError:
        return False


def process_environ(pid: int) -> dict[str, str] | None:
    """The environment process `pid` was started with (/proc/<pid>/environ); None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    pairs = (item.decode("utf-8", "surrogateescape").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _eq, value in pairs if name}


def package_source(package_dir: str | None, environ: Mapping[str, str]) -> str | None:
    """"registry" for a package cargo unpacked from a registry (its directory lies in
    `$CARGO_HOME/registry/src/`, CARGO_HOME defaulting to ~/.cargo as cargo's does), else None: a workspace
    member, a path or git dependency, a vendored copy. What policy entries with `source = "registry"` match
    (shim.policy.model.Entry.origin); by real paths, so a link cannot make a local package look downloaded."""
    if not package_dir:
        return None
    home = environ.get("CARGO_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cargo")
    registry = os.path.realpath(os.path.join(home, "registry", "src"))
    return "registry" if os.path.realpath(package_dir).startswith(registry + os.sep) else None
