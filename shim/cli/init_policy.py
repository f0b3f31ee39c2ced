"""`cratecage init`: propose a policy from what a build actually needed.

It builds the workspace through cratecage in warn mode, in a target directory of its own
(`target/cratecage-init`), under a policy that grants nothing (`CRATECAGE_POLICY` names a file holding only
`mode = "warn"`, which hides any existing policy). Warn mode lets build scripts read any file and see the
whole environment (shim.sandbox.enforce), so a script that would stop at its first refused read gets on to the
next; every read, lookup and directive beyond the defaults, and every refused write or spawn, is then a
denial event in that build's audit trail, each with the entry that would permit it. Those entries, merged
per crate and commented with the crate's version, are the proposal. Review it before use: it grants exactly what
this one build asked for, which is not the same as what the crate should have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shim.errors import UsageError
from shim.sandbox import audit

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def proposals(audit_log: Path) -> dict[tuple[str, str, str], dict[str, dict[str, list[str]]]]:
    """(kind, crate, version) -> capability -> list key -> items, from the denial events' entries."""
    found: dict[tuple[str, str, str], dict[str, dict[str, list[str]]]] = {}
    for line in audit_log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") != "denial" or not event.get("permit_with"):
            continue
        try:
            snippet = tomllib.loads(event["permit_with"])
        except tomllib.TOMLDecodeError:
            continue
        for kind, crates in snippet.get("permissions", {}).items():
            for crate, caps in crates.items():
                entry = found.setdefault((kind, crate, event.get("version", "?")), {})
                for cap, table in caps.items():
                    lists = entry.setdefault(cap, {})
                    for key, items in table.items():
                        if key != "action":
                            bucket = lists.setdefault(key, [])
                            bucket.extend(i for i in items if i not in bucket)
    return found


def render(found: dict[tuple[str, str, str], dict[str, dict[str, list[str]]]]) -> str:
    from shim.policy.suggest import toml_string

    out = ["# Proposed by `cratecage init`: exactly what one warn-mode build asked for. Review every entry.", ""]
    for (kind, crate, version), caps in sorted(found.items()):
        out.append(f"[permissions.{kind}.{crate}]  # {crate} {version}")
        for cap, lists in sorted(caps.items()):
            body = ", ".join(f"{key} = [{', '.join(map(toml_string, items))}]"  # JSON's escapes are not TOML's
                             for key, items in sorted(lists.items()))
            out.append(f'{cap} = {{ action = "permit", {body} }}')
        out.append("")
    return "\n".join(out)


def run(cargo_args: list[str], *, output: str | None, force: bool) -> int:
    from shim.cargo.workspace import root_for_command

    root = root_for_command()
    target = root / "target" / "cratecage-init"
    dest = Path(output) if output else root / "cratecage.toml"
    if dest.exists() and not force:
        raise UsageError(f"{dest} exists", hint="pass --output <file> for the proposal, or --force to replace it")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    warn_policy = target / "warn-only.toml"
    warn_policy.write_text('[permissions]\nmode = "warn"\n')
    env = dict(os.environ, CRATECAGE_POLICY=str(warn_policy), CRATECAGE_WORKSPACE_ROOT=str(root.absolute()),
               CARGO_TARGET_DIR=str(target), CARGO_BUILD_BUILD_DIR=str(target),  # its audit log is there
               RUSTC_WRAPPER=os.path.abspath(sys.argv[0]))
    print(f"cratecage: building {root} in warn mode into {target}", file=sys.stderr)
    done = subprocess.run(["cargo", "build", *cargo_args], cwd=root, env=env)
    log = audit.log_path(target)
    found = proposals(log) if log.is_file() else {}
    dest.write_text(render(found))
    print(f"cratecage: wrote {dest}: {len(found)} crate entries"
          + ("" if done.returncode == 0 else f" (the build itself failed with exit {done.returncode})"),
          file=sys.stderr)
    return 0 if done.returncode == 0 else 1
