"""Where the policy of a build comes from: the first source found wins, the others are named in warnings.

Order (DESIGN.md "Policy", issue 4):
  1. the file `CRATECAGE_POLICY` names (relative: to the workspace root), top-level tables; must exist;
  2. `<root>/cratecage.toml`, top-level tables (it wins by existing, even with no entries);
  3. `[workspace.metadata.permissions]` in `<root>/Cargo.toml`;
  4. `[package.metadata.permissions]` in `<root>/Cargo.toml`, when that manifest is a single package
     (has `[package]` and no `[workspace]`).
Only the winner is validated; a hidden source is not read further than "does it have permissions". The
root is the workspace of the outermost cargo (found by the caller, shim.cargo.workspace): policy in a
dependency's own manifest never grants anything, because it is never looked at. Where that root is
unknown, only an absolute `CRATECAGE_POLICY` is read (the caller refuses the build otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Final, Mapping

from shim.policy.errors import PolicyError
from shim.policy.load import load_text, parse_toml, permissions_table, read_text
from shim.policy.model import Policy
from shim.record import record

POLICY_ENV: Final = "CRATECAGE_POLICY"
POLICY_FILE: Final = "cratecage.toml"
MANIFEST: Final = "Cargo.toml"


@record(frozen=True)
class _Found:
    label: str  # for warnings
    path: Path
    where: str
    text: str


class _Manifest:
    """The root Cargo.toml, read and parsed at most once. Parse errors count only when it would win."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._text: str | None = None
        self._data: dict[str, Any] | None = None

    def data(self, strict: bool) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        if self._data is None:
            try:
                self._text = read_text(self.path)
                self._data = parse_toml(self._text, str(self.path))
            except PolicyError:
                if strict:
                    raise
                return None
        return self._data

    @property
    def text(self) -> str:
        return self._text or ""


def _from_env(root: Path, environ: Mapping[str, str], strict: bool) -> _Found | None:
    named = environ.get(POLICY_ENV)
    if not named:
        return None
    path = root / named
    if not path.is_file():
        raise PolicyError(str(path), None, POLICY_ENV, "names this file, which does not exist")
    return _Found(str(path), path, "top-level", read_text(path) if strict else "")


def _policy_file(root: Path, strict: bool) -> _Found | None:
    path = root / POLICY_FILE
    if not path.is_file():
        return None
    return _Found(str(path), path, "top-level", read_text(path) if strict else "")


def _manifest_section(where: str) -> Callable[[_Manifest, bool], _Found | None]:
    def find(manifest: _Manifest, strict: bool) -> _Found | None:
        data = manifest.data(strict)
        if data is None or permissions_table(data, where) is None:
            return None
        if where == "package" and "workspace" in data:
            return None  # a workspace root's own package: see _misplaced
        return _Found(f"{manifest.path} [{where}.metadata.permissions]", manifest.path, where, manifest.text)
    return find


def _misplaced(manifest: _Manifest) -> list[str]:
    data = manifest.data(False)
    if data and "workspace" in data and permissions_table(data, "package") is not None:
        return [f"cratecage: {manifest.path} [package.metadata.permissions] is ignored: this Cargo.toml "
                f"defines a workspace; move it to [workspace.metadata.permissions]"]
    return []


def discover(workspace_root: Path | None, environ: Mapping[str, str]) -> tuple[Policy, list[str]]:
    """(the policy of the first source found, or an empty one; warnings about sources it hides).
    `workspace_root` None: the workspace is unknown and only an absolute CRATECAGE_POLICY is read."""
    if workspace_root is None:
        named = environ.get(POLICY_ENV, "")
        if not Path(named).is_absolute():
            raise PolicyError(named or "(unset)", None, POLICY_ENV, "must be an absolute path when the "
                              "workspace root is unknown (set CRATECAGE_WORKSPACE_ROOT)")
        found = _from_env(Path("/"), environ, True)
        assert found is not None
        return load_text(found.text, file=str(found.path), base=found.path.absolute().parent,
                         where=found.where, source=found.path), []
    root = Path(workspace_root)
    manifest = _Manifest(root / MANIFEST)
    finders: list[Callable[[bool], _Found | None]] = [
        lambda strict: _from_env(root, environ, strict),
        lambda strict: _policy_file(root, strict),
        lambda strict: _manifest_section("workspace")(manifest, strict),
        lambda strict: _manifest_section("package")(manifest, strict),
    ]
    winner: _Found | None = None
    warnings: list[str] = []
    for find in finders:
        found = find(winner is None)
        if found is None:
            continue
        if winner is None:
            winner = found
        else:
            warnings.append(f"cratecage: {found.label} also has permissions; ignored because {winner.label} "
                            f"comes first")
    warnings += _misplaced(manifest)
    if winner is None:
        return Policy(), warnings
    policy = load_text(winner.text, file=str(winner.path), base=winner.path.absolute().parent,
                       where=winner.where, source=winner.path)
    return policy, warnings
