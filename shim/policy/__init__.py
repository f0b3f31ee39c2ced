"""cratecage's permission model: reading policy, validating it, resolving what one crate may do.

This package is pure logic: no sandbox, no cargo. The runner asks `discover` for the build's policy,
`Policy.resolve` for one crate's `Grant`, and the Grant's `allows_*` methods for each request; denials
print `suggest_entry`. Modules, one concern each:

    capabilities.py  the table of capability kinds, their list keys and how items match
    load.py          TOML -> validated Policy; every error names file, line, key, what was expected
    locate.py        line numbers of keys (tomllib reports none)
    model.py         Policy, Entry, Rule, Limits, Grant (merging, deny-wins, digest)
    semver.py        `version = "..."` requirements, matched like cargo's semver crate
    sources.py       discovery and precedence of policy sources
    curated.py       curated defaults for well-known crates, in this same format
    suggest.py       paste-ready entries for denials
    errors.py        PolicyError (exit 2)

The format
----------
In `cratecage.toml` at the workspace root (or the file `CRATECAGE_POLICY` names, relative to the
workspace root) as top-level tables;
or in the root Cargo.toml under `[workspace.metadata.permissions...]`, or, in a single-package project,
`[package.metadata.permissions...]`. The first of these four found wins; the others get a warning.

    [permissions]
    mode = "enforce"                 # or "warn": permit reads, variables and directives, report, fail nothing
    curated-defaults = true          # false: ignore shim/policy/curated.py

    [permissions.build.openssl-sys]  # the build script of package openssl-sys (- and _ are the same)
    version = "^0.9"                 # optional semver requirement; entries that do not match are ignored
    process-spawn     = { action = "permit", programs = ["cc", "pkg-config"] }
    env-access        = { action = "permit", vars = ["PKG_CONFIG_PATH", "OPENSSL_*"] }
    filesystem-access = { action = "permit", paths = ["/usr/include"], writable = ["target/gen"] }
    directives        = { action = "permit", list = ["rustc-link-lib=ssl", "rustc-link-search=/opt/ssl/lib"] }
    limits            = { time = "5m", memory = "2GiB" }

    [permissions.macro.sqlx-macros]  # the proc macro of package sqlx-macros
    network-access    = { action = "permit", routes = ["127.0.0.1:5432", "[::1]:5432", "db.local:*"] }
    sandbox = "native"               # the one escape hatch: run it natively; reported on every build

    [permissions.run.my-tool]        # a program run with the cratecage runner
    env-access = ["HOME"]            # shorthand for a capability with one list: permit these

Kinds are `build`, `macro` and `run`; each holds one table per package, or an array of tables
(`[[permissions.build.foo]]`) to give one package several entries, e.g. for different versions. The
package `"*"` is every package, and its entries may only deny. `source = "registry"` narrows an entry to
packages downloaded from a registry (shim.cargo.workspace.package_source).

Capabilities (shim/policy/capabilities.py), each `{ action = "permit" | "deny", <list keys> }`:
  - `filesystem-access`: `paths` readable, `writable` readable and writable. Each path is a tree.
    Relative paths are relative to the directory of the file holding the policy; `~` is expanded.
  - `env-access`: `vars`, exact names or a prefix ending in `*`.
  - `network-access`: `routes`, `host:port`, IPv6 in brackets (`[::1]:443`), port `*` for any. Hosts
    match as written here (no DNS resolution in this package); the runner (shim/host/net.py) admits a
    connection to an address when a route names that address, or names a host that resolved to it
    during the run. So `localhost:5432` and `127.0.0.1:5432` are different grants.
  - `process-spawn`: `programs`, a bare name (found in PATH by the host) or a path; matched exactly.
    `may-run`, items of the same form: what the crate's granted programs may start beyond their profile
    (shim/policy/programs.toml; a build driver's covers the system's tools). An array is `programs`. A deny of a
    program makes its refusal expected: the script is told "not found", the audit log records it.
  - `directives`: `list` of build-script directives beyond the defaults (see shim/build/directives.py). An
    item is `KEY` (every directive with that key) or `KEY=TARGET`, TARGET exact or a prefix ending in
    `*` (a `*` never matches across a `..` path segment). TARGET is the variable for `rustc-env`
    (`rustc-env=LD_PRELOAD`), the path for `rustc-link-search` (without `native=`), the library name
    for `rustc-link-lib` (`rustc-link-lib=z`), and the whole value for every other key
    (`rustc-link-arg=-Wl,--as-needed`). Without a grant, directives pass when harmless: rerun-if-*,
    rustc-cfg, rustc-check-cfg, warning, error, metadata, search paths inside OUT_DIR or the crate's own
    package, libraries found there or among the system's own (shim/confine/syslibs.py), rustc-env of variables
    that do not change how programs load or run. A `rustc-link-lib=NAME` grant also lets the crate's
    compiler probes link that library (`-l NAME`).

Merging: every entry that applies to a crate (kind, name, version) and the curated defaults are merged
by union. `action = "deny"` wins over any permit of the same target, whichever entry permits it; a deny
with no list refuses the whole capability. For paths, a permitted tree that overlaps a denied one is
withheld entirely (a preopened directory cannot have holes). A deny takes back only grants: the
directive defaults above are not grants and stay. Limits merge to the larger value. `Grant.digest()`
hashes exactly what is granted, not where it is written.

Errors: anything malformed (bad TOML, unknown table or key, wrong type, a route without a port, an
unknown action, a bad version requirement, an unknown kind) is a PolicyError, rendered as one line
`cratecage: <file>:<line>: <key>: <what was expected>`. Package names are not checked: a name that
matches no package is the caller's warning, not an error.
"""

from __future__ import annotations

from shim.policy import curated, model
from shim.policy.errors import PolicyError
from shim.policy.load import load_file, load_text
from shim.policy.model import Entry, Grant, Limits, Policy, Rule, Source
from shim.policy.sources import discover
from shim.policy.suggest import suggest_entry

__all__ = [
    "Entry",
    "Grant",
    "Limits",
    "Policy",
    "PolicyError",
    "Rule",
    "Source",
    "discover",
    "load_file",
    "load_text",
    "suggest_entry",
]

model.curated_entries = curated.entries  # see shim.policy.model.curated_entries
