"""The audit trail: what each sandboxed run was granted, what it was refused, how it ended.

Events are JSON lines in `<build dir>/cratecage/audit.jsonl` (`log_path`; `cargo clean` removes them), appended with one
write each so parallel runs never interleave, and also logged through structlog (JSON on stderr with
`CRATECAGE_LOG=json`). JSON escapes every control character, so text a script chose (paths, argv) cannot
break a line of the log; `summary` shows it escaped (shim.untrusted). Every event names crate, version and kind; a grant event lists what the policy
gave beyond the defaults and the entries (file:line) it came from; a denial names the capability, the
exact target and the entry that would permit it; an output run, a file of the run's own output that a
granted build driver ran (configure's `./conftest`) and how often; a connection (shim.host.net) names the granted route and
the address it reached; a `native` event, a unit compiled to run natively (`sandbox = "native"`), at
its compile. `cratecage audit` summarises the last run of each crate and ends with what ran where.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from shim.cargo import layout
from shim.files import append_line
from shim.host.context import RunContext
from shim.untrusted import shown

AUDIT_LOG = "audit.jsonl"
RUN_ID = os.urandom(6).hex()  # one runner process is one run


def _append(cc_dir: Path, event: dict[str, Any]) -> None:
    try:
        append_line(cc_dir / AUDIT_LOG, json.dumps(event))
    except OSError:
        pass
    if os.environ.get("CRATECAGE_LOG", "").lower() == "json":
        from shim.log import get_logger

        fields = {k: v for k, v in event.items() if k != "event"}
        get_logger("audit").info(event["event"], **fields)


def record(cc_dir: Path, ctx: RunContext, grant: Any, exit_code: int, message: str, seconds: float,
           **run: Any) -> None:
    """All events of one finished run; `run` adds fields to its closing event (a macro server's: `expansions`,
    and `consumer`, the crate whose compile it expanded for)."""
    base = {"crate": ctx.crate, "version": ctx.version, "kind": ctx.kind, "run": RUN_ID,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    granted = {k: list(v) for k, v in grant.permits.items()} if grant is not None else {}  # None: defaults
    if granted or (grant is not None and grant.native):
        _append(cc_dir, {**base, "event": "grant", "granted": granted, "mode": grant.mode,
                         "entries": [str(e) for e in grant.entries]})
    for spawn in ctx.spawns:
        _append(cc_dir, {**base, "event": "spawn", "capability": "process-spawn", "program": spawn.program,
                         "argv": list(spawn.argv)})
    for output_run in ctx.output_runs:
        _append(cc_dir, {**base, "event": "output-run", "capability": "process-spawn", "program": output_run.program,
                         "started_by": output_run.started_by, "count": output_run.count})
    for connection in ctx.connections:
        _append(cc_dir, {**base, "event": "connection", "capability": "network-access",
                         "route": connection.route, "address": connection.address})
    for denial in ctx.denials:
        _append(cc_dir, {**base, "event": "denial", "capability": denial.capability, "target": denial.target,
                         "reason": denial.reason, "permit_with": denial.fix, "fatal": denial.fatal,
                         "permitted": denial.permitted, "expected": denial.expected,
                         "mode": grant.mode if grant is not None else "enforce"})
    _append(cc_dir, {**base, "event": "run", "exit_code": exit_code, "seconds": round(seconds, 3),
                     "message": message, "denials": len(ctx.denials), **run})


def native(cc_dir: Path, kind: str, crate: str, version: str, policy_file: str) -> None:
    """A build script or proc-macro crate compiled to run natively, as `sandbox = "native"` in `policy_file`
    says: counted apart from the sandboxed runs (`summary`), so nothing native hides among them."""
    try:
        cc_dir.mkdir(parents=True, exist_ok=True)  # a native macro may be the build's first unit
    except OSError:
        pass
    _append(cc_dir, {"event": "native", "crate": crate, "version": version, "kind": kind, "run": RUN_ID,
                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "policy": policy_file})


def log_path(build_dir: Path) -> Path:
    """The audit log of a build directory (shim.cargo.layout.state_dir)."""
    return build_dir / layout.STATE_DIR / AUDIT_LOG


def summary(log: Path) -> list[str]:
    """Lines for `cratecage audit`: per build script, its last run with its grants and denials; per proc macro
    and crate it expanded for, the same of its last server (shim.macro.server), with the expansions; the
    units compiled to run natively; last, how many of each ran where (`where_it_ran`)."""
    events: list[dict[str, Any]] = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    last: dict[tuple[str, str, str, str], str] = {}
    native: dict[tuple[str, str, str], str] = {}  # (kind, crate, version) -> the policy file, when native last
    for e in events:
        unit = (e.get("kind", "build"), e.get("crate", "?"), e.get("version", "?"))
        if e.get("event") == "run":
            last[(*unit, e.get("consumer", ""))] = e["run"]
            native.pop(unit, None)
        elif e.get("event") == "native":
            native[unit] = e.get("policy", "?")
            for key in [k for k in last if k[:3] == unit]:
                del last[key]
    lines = [f"{'crate':<24} {'version':<10} {'result':<9} {'seconds':>7}  grants / denials"]
    expansions = 0
    for (kind, crate, version, consumer), run in sorted(last.items()):
        mine = [e for e in events if e.get("run") == run and e["crate"] == crate and e.get("kind", "build") == kind]
        end = next(e for e in mine if e["event"] == "run")
        result = "ok" if end["exit_code"] == 0 else f"exit {end['exit_code']}"
        count = end.get("expansions", 0)
        expansions += count if kind == "macro" else 0
        what = (f"  proc macro: {_count(count, 'expansion')} for {consumer}" if kind == "macro" else "")
        lines.append(f"{crate:<24} {version:<10} {result:<9} {end['seconds']:>7.2f}{what}")
        for e in mine:
            if e["event"] == "grant":
                for cap, items in sorted(e["granted"].items()):
                    lines.append(f"    granted  {cap}: {', '.join(items)}  ({'; '.join(e['entries'])})")
            elif e["event"] == "spawn":
                lines.append(f"    ran      {' '.join(e['argv'])[:100]}")
            elif e["event"] == "output-run":
                lines.append(f"    ran      {e['program']} (built by this run; by {e['started_by']}, "
                             f"{e['count']} time{'s' if e['count'] != 1 else ''})")
            elif e["event"] == "connection":
                lines.append(f"    used     {e['capability']}: {e['route']} ({e['address']})")
            elif e["event"] == "denial":
                verb = "refused " if e.get("expected") else "denied  "  # refused: as an explicit deny says
                lines.append(f"    {verb} {e['capability']}: {e['target']}")
    for (kind, crate, version), policy in sorted(native.items()):
        what = "build script" if kind == "build" else "proc macro"
        lines.append(f"{crate:<24} {version:<10} {'native':<9} {'':>7}  {what} unsandboxed: sandbox = \"native\" "
                     f"in {policy}")
    lines += where_it_ran(last, native, events, expansions)
    return [shown(line) for line in lines]  # targets and argv are the scripts' text (shim.untrusted)


def where_it_ran(last: dict[tuple[str, str, str, str], str], native: dict[tuple[str, str, str], str],
                 events: list[dict[str, Any]], expansions: int) -> list[str]:
    """The summary's last two lines: what ran as wasm in the sandbox, and what natively, counted from the log."""
    failed = sum(1 for (k, _c, _v, _), r in last.items() if k == "build"
                 and any(e.get("run") == r and e["event"] == "run" and e["exit_code"] for e in events))
    scripts = sum(1 for key in last if key[0] == "build")
    macros = {key[1:3] for key in last if key[0] == "macro"}
    consumers = {key[3] for key in last if key[0] == "macro"}
    native_scripts = sum(1 for key in native if key[0] == "build")
    return [f"ran as wasm in the sandbox: {_count(scripts, 'build script')} ({failed} failed), "
            f"{_count(len(macros), 'proc macro crate')} ({_count(expansions, 'expansion')} "
            f"in {_count(len(consumers), 'crate')})",
            f"ran natively: {_count(native_scripts, 'build script')}, "
            f"{_count(len(native) - native_scripts, 'proc macro crate')}"
            + (" (sandbox = \"native\" in the policy)" if native else "")]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
