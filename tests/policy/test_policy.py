"""The policy package: format, validation messages, precedence, resolution, digests (policy/__init__.py)."""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shim import policy
from shim.policy import Policy, PolicyError, discover, load_file, suggest_entry
from shim.policy.capabilities import CAPABILITIES
from shim.policy.curated import CURATED
from shim.policy.load import load_text
from shim.policy.semver import parse_req


def write(directory: Path, text: str, name: str = "cratecage.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, where: str = "top-level", name: str = "cratecage.toml") -> Policy:
    return load_file(write(tmp_path, text, name), where=where)


def grant_of(tmp_path: Path, body: str, *, crate: str = "foo", version: str = "1.0.0", kind: str = "build"):
    text = f"[permissions]\ncurated-defaults = false\n[permissions.{kind}.foo]\n{body}\n"
    return load(tmp_path, text).resolve(kind, crate, version)


# --- every capability -------------------------------------------------------------------------------------

FS = 'filesystem-access = { action = "permit", paths = ["/usr/include"], writable = ["/w"] }'
ENV = 'env-access = { action = "permit", vars = ["OPENSSL_DIR", "PKG_CONFIG_*"] }'
NET = 'network-access = { action = "permit", routes = ["127.0.0.1:5432", "[::1]:*", "Db.Local:443"] }'
SPAWN = 'process-spawn = { action = "permit", programs = ["pkg-config", "/usr/bin/cc"] }'
DIRECTIVES = ('directives = { action = "permit", list = ["rustc-link-arg", "rustc-env=LD_PRELOAD", '
              '"rustc-link-search=/opt/*"] }')


@pytest.mark.parametrize(
    "body, question, target, allowed",
    [
        (FS, "read", "/usr/include", True),
        (FS, "read", "/usr/include/openssl/ssl.h", True),
        (FS, "read", "/usr/includes/x", False),
        (FS, "read", "/usr/include/../../etc/passwd", False),
        (FS, "read", "relative/path", False),
        (FS, "write", "/usr/include/x", False),
        (FS, "write", "/w/deep/file", True),
        (FS, "read", "/w/deep/file", True),
        (ENV, "env", "OPENSSL_DIR", True),
        (ENV, "env", "OPENSSL_DIRX", False),
        (ENV, "env", "PKG_CONFIG_PATH", True),
        (ENV, "env", "PKG_CONFIG_", True),
        (ENV, "env", "PKG_CONFIG", False),
        (ENV, "env", "CARGO_REGISTRY_TOKEN", False),
        (NET, "route", "127.0.0.1:5432", True),
        (NET, "route", "127.0.0.1:5433", False),
        (NET, "route", "[::1]:80", True),
        (NET, "route", "[0:0:0::1]:443", True),
        (NET, "route", "db.local:443", True),
        (NET, "route", "DB.LOCAL:443", True),
        (NET, "route", "db.local:80", False),
        (SPAWN, "program", "pkg-config", True),
        (SPAWN, "program", "/usr/bin/cc", True),
        (SPAWN, "program", "cc", False),
        (SPAWN, "program", "/tmp/pkg-config", False),
        (DIRECTIVES, "directive", "rustc-link-arg=-Wl,-z,now", True),
        (DIRECTIVES, "directive", "rustc-link-arg", True),
        (DIRECTIVES, "directive", "rustc-env=LD_PRELOAD", True),
        (DIRECTIVES, "directive", "rustc-env=LD_LIBRARY_PATH", False),
        (DIRECTIVES, "directive", "rustc-env", False),
        (DIRECTIVES, "directive", "rustc-link-search=/opt/ssl/lib", True),
        (DIRECTIVES, "directive", "rustc-link-search=/opt/../etc", False),
        (DIRECTIVES, "directive", "rustc-flags=-lfoo", False),
    ],
)
def test_each_capability_grants_what_it_lists(tmp_path: Path, body: str, question: str, target: str,
                                              allowed: bool) -> None:
    assert grant_of(tmp_path, body).allows(question, target) is allowed


def test_the_capability_table_has_the_five_kinds() -> None:
    assert {k: list(c.lists) for k, c in CAPABILITIES.items()} == {
        "filesystem-access": ["paths", "writable"], "env-access": ["vars"], "network-access": ["routes"],
        "process-spawn": ["programs", "may-run"], "directives": ["list"]}


def test_named_methods_answer_like_the_table(tmp_path: Path) -> None:
    g = grant_of(tmp_path, "\n".join([FS, ENV, NET, SPAWN, DIRECTIVES]))
    assert g.allows_read("/usr/include/x.h") and g.allows_write(Path("/w/x")) and not g.allows_write("/usr/include")
    assert g.allows_env("PKG_CONFIG_LIBDIR") and not g.allows_env("HOME")
    assert g.allows_route("::1", 9) and g.allows_route("[::1]", "9") and g.allows_route("127.0.0.1", 5432)
    assert g.allows_program("pkg-config") and not g.allows_program("sh")
    assert g.allows_directive("rustc-env", "LD_PRELOAD") and g.allows_directive("rustc-link-arg")
    assert not g.allows_directive("rustc-env")
    assert g.readable == ("/usr/include", "/w") and g.writable == ("/w",)
    assert g.routes == ("127.0.0.1:5432", "[::1]:*", "db.local:443")
    assert g.programs == ("/usr/bin/cc", "pkg-config")


def test_a_list_capability_accepts_an_array_as_a_permit(tmp_path: Path) -> None:
    g = grant_of(tmp_path, 'env-access = ["FOO"]\ndirectives = ["rustc-link-arg"]')
    assert g.allows_env("FOO") and g.allows_directive("rustc-link-arg", "-s")


def test_sandbox_native_and_limits(tmp_path: Path) -> None:
    g = grant_of(tmp_path, 'sandbox = "native"\nlimits = { time = "5m", memory = "2GiB" }')
    assert g.native and (g.limits.time_s, g.limits.memory) == (300.0, 2 << 30)
    assert grant_of(tmp_path, "limits = { time = 90, memory = 1024 }").limits.time_s == 90
    assert not grant_of(tmp_path, "").native



def test_limits_on_native_children_and_disk(tmp_path: Path) -> None:
    g = grant_of(tmp_path, 'limits = { processes = 512, child-memory = "8GiB", disk = "10GiB" }')
    assert (g.limits.processes, g.limits.child_memory, g.limits.disk) == (512, 8 << 30, 10 << 30)


def test_mode_is_global(tmp_path: Path) -> None:
    assert load(tmp_path, '[permissions]\nmode = "warn"').mode == "warn"
    assert load(tmp_path, "[permissions]").mode == "enforce"
    assert Policy().mode == "enforce"
    assert load(tmp_path, '[permissions]\nmode = "warn"').resolve("build", "x", "1.0.0").mode == "warn"


# --- errors: file, line, key, what was expected -----------------------------------------------------------

@pytest.mark.parametrize(
    "text, line, key, expected",
    [
        ("[permissions\n", 1, None, "invalid TOML: Expected ']' at the end of a table declaration"),
        ('[permissions]\nmode = "warn"\nx = \n', 3, None, "invalid TOML: Invalid value"),
        ("[package]\nname = 'x'\n", 1, "package", "unknown table; a policy file holds only [permissions"),
        ('mode = "warn"\n', 1, "mode", "([permissions] holds mode and the kinds)"),
        ("[permissions]\n\n[permissions.bild.foo]\n", 3, "permissions.bild",
         "unknown kind (did you mean build?); expected one of build, macro, run, mode, curated-defaults"),
        ('[permissions]\nmode = "loud"\n', 2, "permissions.mode", 'expected "enforce" or "warn", found "loud"'),
        ("[permissions]\nmode = 1\n", 2, "permissions.mode", "expected \"enforce\" or \"warn\", found an integer"),
        ("[permissions]\ncurated-defaults = 'no'\n", 2, "permissions.curated-defaults",
         "expected true or false, found a string"),
        ("[permissions]\nbuild = 3\n", 2, "permissions.build", "expected a table of packages"),
        ("[permissions.build]\nfoo = 1\n", 2, "permissions.build.foo",
         "expected a table [permissions.build.foo], found an integer"),
        ("[permissions.build.foo]\n\nfilesytem-access = {}\n", 3, "permissions.build.foo.filesytem-access",
         "unknown key (did you mean filesystem-access?); expected one of filesystem-access, env-access, "
         "network-access, process-spawn, directives, version, sandbox, limits"),
        ('[permissions.build]\nenv-access = { action = "permit", vars = ["A"] }\n', 2,
         "permissions.build.env-access.action", "(a capability goes in [permissions.build.<package>])"),
        ('[permissions.build.foo]\nfilesystem-access = { action = "permit", path = ["/x"] }\n', 2,
         "permissions.build.foo.filesystem-access.path",
         "unknown key (did you mean paths?); expected one of action, paths, writable"),
        ('[permissions.build.foo]\nfilesystem-access = { paths = ["/x"] }\n', 2,
         "permissions.build.foo.filesystem-access", 'expected action = "permit" or action = "deny"'),
        ('[permissions.build.foo]\nenv-access = { action = "allow", vars = ["A"] }\n', 2,
         "permissions.build.foo.env-access.action", 'expected "permit" or "deny", found "allow"'),
        ('[permissions.build.foo]\nenv-access = { action = "permit" }\n', 2,
         "permissions.build.foo.env-access", "expected at least one of vars with a permit"),
        ('[permissions.build.foo]\nenv-access = "A"\n', 2, "permissions.build.foo.env-access",
         'expected an inline table such as { action = "permit", vars = ["OPENSSL_DIR"] }, found a string'),
        ('[permissions.build.foo]\nfilesystem-access = ["/x"]\n', 2, "permissions.build.foo.filesystem-access",
         "expected an inline table such as"),
        ('[permissions.build.foo]\nfilesystem-access = { action = "permit", paths = "/x" }\n', 2,
         "permissions.build.foo.filesystem-access.paths",
         'expected an array of strings such as paths = ["/usr/include"]'),
        ('[permissions.build.foo]\nfilesystem-access = { action = "permit", paths = [\n  "/a",\n  7,\n] }\n', 4,
         "permissions.build.foo.filesystem-access.paths[1]", "expected a string, found an integer"),
        ('[permissions.macro.m]\nnetwork-access = { action = "permit", routes = ["127.0.0.1"] }\n', 2,
         "permissions.macro.m.network-access.routes[0]", "a route needs a port, or *"),
        ('[permissions.macro.m]\nnetwork-access = { action = "permit", routes = ["::1:80"] }\n', 2,
         "permissions.macro.m.network-access.routes[0]", "an IPv6 address goes in brackets: [::1]:5432"),
        ('[permissions.macro.m]\nnetwork-access = { action = "permit", routes = ["[::1]"] }\n', 2,
         "permissions.macro.m.network-access.routes[0]", "a route needs a port, or *"),
        ('[permissions.macro.m]\nnetwork-access = { action = "permit", routes = ["h:70000"] }\n', 2,
         "permissions.macro.m.network-access.routes[0]", "expected a port from 1 to 65535 or *"),
        ('[permissions.macro.m]\nnetwork-access = { action = "permit", routes = ["bad host:1"] }\n', 2,
         "permissions.macro.m.network-access.routes[0]", "not a host name or IPv4 address"),
        ('[permissions.build.foo]\nenv-access = { action = "permit", vars = ["A*B"] }\n', 2,
         "permissions.build.foo.env-access.vars[0]", "expected a variable name, or a prefix ending in *"),
        ('[permissions.build.foo]\ndirectives = ["rustc-link-args"]\n', 2, "permissions.build.foo.directives[0]",
         "expected KEY or KEY=TARGET with KEY one of error, metadata"),
        ('[permissions.build.foo]\nversion = "1.x.2"\n', 2, "permissions.build.foo.version",
         'expected a semver requirement such as "^1.2"'),
        ('[permissions.build.foo]\nversion = ">= banana"\n', 2, "permissions.build.foo.version",
         "not a version requirement"),
        ("[permissions.build.foo]\nversion = 1\n", 2, "permissions.build.foo.version",
         "expected a semver requirement such as \"^1.2\", found an integer"),
        ('[permissions.build.foo]\nsandbox = "wasm"\n', 2, "permissions.build.foo.sandbox",
         'expected "native" (the only choice), found "wasm"'),
        ('[permissions.build.foo]\nlimits = { time = "forever" }\n', 2, "permissions.build.foo.limits.time",
         'expected a value such as "5m"'),
        ('[permissions.build.foo]\nlimits = { time = "0s" }\n', 2, "permissions.build.foo.limits.time",
         "expected a value above zero"),
        ('[permissions.build.foo]\nlimits = { stack = "1MiB" }\n', 2, "permissions.build.foo.limits.stack",
         "unknown key; expected one of time, memory"),
        ('[permissions.build."a b".limits]\nmemory = true\n', 2, 'permissions.build."a b".limits.memory',
         "found a boolean"),
        ('[permissions.build.foo]\nlimits = { processes = "many" }\n', 2, "permissions.build.foo.limits.processes",
         "expected a whole number of processes such as 512, found a string"),
        ('[permissions.build.foo]\nlimits = { processes = 0 }\n', 2, "permissions.build.foo.limits.processes",
         "expected a number above zero"),
        ('[permissions.build.foo]\nlimits = { child-memory = "lots" }\n', 2,
         "permissions.build.foo.limits.child-memory", 'expected a value such as "8GiB"'),
        ('[permissions.build.foo]\nlimits = { disk = -1 }\n', 2, "permissions.build.foo.limits.disk",
         "expected a value above zero"),
        ("[[permissions.build.foo]]\nversion = '1'\n[[permissions.build.foo]]\nversion = 'y'\n", 4,
         "permissions.build.foo[1].version", "expected a semver requirement"),
        ('# a comment with "[permissions.build.foo]" in it\ns = """\n[permissions.build.foo]\n"""\n', 2, "s",
         "unknown table"),
    ],
)
def test_errors_name_file_line_key_and_what_was_expected(tmp_path: Path, text: str, line: int, key: str | None,
                                                          expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_file(path, where="top-level")
    err = info.value
    assert (err.file, err.line, err.key) == (str(path), line, key)
    assert expected in err.expected
    rendered = err.render()
    prefix = f"cratecage: {path}:{line}: " + (f"{key}: " if key else "")
    assert rendered.startswith(prefix) and "\n" not in rendered
    assert err.exit_code == 2


def test_errors_in_a_manifest_point_into_the_manifest(tmp_path: Path) -> None:
    text = ('[package]\nname = "app"\n\n[package.metadata.permissions.build.foo]\n'
            'env-access = { action = "permit", vars = ["A"] }\nfilesystem-access = { action = "maybe" }\n')
    path = write(tmp_path, text, "Cargo.toml")
    with pytest.raises(PolicyError) as info:
        load_file(path, where="package")
    assert (info.value.line, info.value.key) == (6, "package.metadata.permissions.build.foo.filesystem-access.action")


def test_a_key_with_a_newline_still_renders_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load(tmp_path, '[permissions.build.foo]\n"a\\nb" = 1\n')
    assert "\n" not in info.value.render() and '"a\\nb"' in info.value.render()


def test_unreadable_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_file(tmp_path / "missing.toml", where="top-level")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_file(tmp_path / "bin.toml", where="top-level")


def test_package_names_are_not_checked(tmp_path: Path) -> None:
    p = load(tmp_path, "[permissions.build.no-such-crate-anywhere]\n[permissions.run.tool]\n")
    assert p.crates("build") == {"no-such-crate-anywhere"} and p.crates("run") == {"tool"}


def test_resolve_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        Policy().resolve("test", "foo", "1.0.0")


# --- where the policy lives -------------------------------------------------------------------------------

POLICY = '[permissions.build.foo]\nenv-access = ["FROM_POLICY_FILE"]\n'
WORKSPACE = '[workspace]\nmembers = []\n[workspace.metadata.permissions.build.foo]\nenv-access = ["FROM_WORKSPACE"]\n'
PACKAGE = '[package]\nname = "foo"\n[package.metadata.permissions.build.foo]\nenv-access = ["FROM_PACKAGE"]\n'
BOTH = WORKSPACE + PACKAGE


@pytest.mark.parametrize(
    "files, env, var, hidden",
    [
        ({}, False, None, []),
        ({"cratecage.toml": POLICY}, False, "FROM_POLICY_FILE", []),
        ({"Cargo.toml": WORKSPACE}, False, "FROM_WORKSPACE", []),
        ({"Cargo.toml": PACKAGE}, False, "FROM_PACKAGE", []),
        ({"Cargo.toml": '[package]\nname = "foo"\n'}, False, None, []),
        ({"cratecage.toml": POLICY, "Cargo.toml": WORKSPACE}, False, "FROM_POLICY_FILE",
         ["Cargo.toml [workspace.metadata.permissions]"]),
        ({"cratecage.toml": POLICY, "Cargo.toml": PACKAGE}, False, "FROM_POLICY_FILE",
         ["Cargo.toml [package.metadata.permissions]"]),
        ({"cratecage.toml": "", "Cargo.toml": WORKSPACE}, False, None,
         ["Cargo.toml [workspace.metadata.permissions]"]),
        ({"other.toml": '[permissions.build.foo]\nenv-access = ["FROM_ENV"]\n', "cratecage.toml": POLICY,
          "Cargo.toml": WORKSPACE}, True, "FROM_ENV",
         ["cratecage.toml", "Cargo.toml [workspace.metadata.permissions]"]),
    ],
)
def test_the_first_source_found_wins_and_hidden_ones_are_named(tmp_path: Path, files: dict[str, str], env: bool,
                                                               var: str | None, hidden: list[str]) -> None:
    for name, text in files.items():
        write(tmp_path, text, name)
    environ = {"CRATECAGE_POLICY": "other.toml"} if env else {}
    found, warnings = discover(tmp_path, environ)
    assert found.resolve("build", "foo", "1.0.0").env == ((var,) if var else ())
    winner = found.source
    assert warnings == [f"cratecage: {tmp_path / h} also has permissions; ignored because "
                        f"{winner} comes first" for h in hidden]


def test_package_permissions_of_a_workspace_root_are_ignored_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, BOTH, "Cargo.toml")
    found, warnings = discover(tmp_path, {})
    assert found.resolve("build", "foo", "1.0.0").env == ("FROM_WORKSPACE",)
    assert warnings == [f"cratecage: {tmp_path / 'Cargo.toml'} [package.metadata.permissions] is ignored: this "
                        f"Cargo.toml defines a workspace; move it to [workspace.metadata.permissions]"]


def test_a_missing_policy_file_named_by_the_environment_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        discover(tmp_path, {"CRATECAGE_POLICY": "nope.toml"})
    assert info.value.render() == (f"cratecage: {tmp_path / 'nope.toml'}: CRATECAGE_POLICY: names this file, "
                                   f"which does not exist")


def test_only_the_winner_is_validated(tmp_path: Path) -> None:
    write(tmp_path, POLICY)
    write(tmp_path, '[workspace]\n[workspace.metadata.permissions.build.foo]\nbogus = 1\n', "Cargo.toml")
    assert discover(tmp_path, {})[0].source == tmp_path / "cratecage.toml"
    (tmp_path / "cratecage.toml").unlink()
    with pytest.raises(PolicyError, match="bogus"):
        discover(tmp_path, {})


def test_an_absolute_policy_path_in_the_environment(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write(elsewhere, '[permissions.build.foo]\nfilesystem-access = { action = "permit", paths = ["data"] }\n',
                 "p.toml")
    found, _ = discover(tmp_path / "ws", {"CRATECAGE_POLICY": str(path)})
    assert found.resolve("build", "foo", "1.0.0").readable == (str(elsewhere / "data"),)


# --- resolution -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("written, asked", [("foo-bar", "foo_bar"), ("foo_bar", "foo-bar"), ("foo-bar", "foo-bar"),
                                            ("a_b-c", "a-b_c")])
def test_dash_and_underscore_are_the_same_name(tmp_path: Path, written: str, asked: str) -> None:
    p = load(tmp_path, f'[permissions.build.{written}]\nenv-access = ["X"]\n')
    assert p.resolve("build", asked, "1.0.0").allows_env("X")
    assert not p.resolve("build", "foobar", "1.0.0").allows_env("X")
    assert not p.resolve("macro", asked, "1.0.0").allows_env("X")


@pytest.mark.parametrize(
    "req, version, matches",
    [
        ("^1.2", "1.2.0", True), ("^1.2", "1.9.9", True), ("^1.2", "2.0.0", False), ("^1.2", "1.1.9", False),
        ("1.2", "1.5.0", True), ("1.2", "2.0.0", False),
        ("^0.2.3", "0.2.9", True), ("^0.2.3", "0.3.0", False), ("^0.2.3", "0.2.2", False),
        ("^0.0.3", "0.0.3", True), ("^0.0.3", "0.0.4", False), ("^0", "0.9.0", True), ("^0.0", "0.1.0", False),
        ("~1.2.3", "1.2.9", True), ("~1.2.3", "1.3.0", False), ("~1.2.3", "1.2.2", False), ("~1", "1.9.0", True),
        (">=1, <2", "1.0.0", True), (">=1, <2", "1.99.0", True), (">=1, <2", "2.0.0", False),
        (">=1, <2", "0.9.0", False), (">1.2", "1.3.0", True), (">1.2", "1.2.9", False), ("<=1.2", "1.2.9", True),
        ("<=1.2", "1.3.0", False), ("=1.2.3", "1.2.3", True), ("=1.2.3", "1.2.4", False), ("=1.2", "1.2.7", True),
        ("*", "0.0.1", True), ("*", "99.0.0", True), ("1.*", "1.7.0", True), ("1.*", "2.0.0", False),
        ("1.2.x", "1.2.5", True), ("1.2.x", "1.3.0", False),
        ("^1.2", "1.3.0-alpha", False), ("*", "1.0.0-rc.1", False), (">=1.2.3-alpha", "1.2.3-beta", True),
        (">=1.2.3-alpha", "1.2.4-beta", False), (">=1.2.3-alpha.2", "1.2.3-alpha.10", True),
        (">=1.2.3-alpha", "1.2.3", True), ("<1.2.3-beta", "1.2.3-alpha", True), ("^1.2", "1.2.0+build.5", True),
        ("^1.2", "not-a-version", False),
    ],
)
def test_version_requirements(req: str, version: str, matches: bool) -> None:
    assert parse_req(req).matches(version) is matches


@pytest.mark.parametrize("req", ["", "1.2.3.4", "01.2", ">=", "1.*.3", ">=1.*", "^1.2-pre", "1,,2", "banana"])
def test_bad_version_requirements(req: str) -> None:
    with pytest.raises(ValueError):
        parse_req(req)


def test_a_version_requirement_narrows_an_entry(tmp_path: Path) -> None:
    p = load(tmp_path, '[[permissions.build.foo]]\nversion = "^1"\nenv-access = ["ONE"]\n'
                       '[[permissions.build.foo]]\nversion = ">=2, <3"\nenv-access = ["TWO"]\n'
                       '[[permissions.build.foo]]\nenv-access = ["ALL"]\n')
    assert p.resolve("build", "foo", "1.4.0").env == ("ALL", "ONE")
    assert p.resolve("build", "foo", "2.0.1").env == ("ALL", "TWO")
    assert p.resolve("build", "foo", "3.0.0").env == ("ALL",)
    assert [s.line for s in p.resolve("build", "foo", "1.4.0").entries] == [1, 7]


def test_several_matching_entries_merge(tmp_path: Path) -> None:
    p = load(tmp_path, '[permissions.build.foo-bar]\nenv-access = ["A"]\nlimits = { time = "1m" }\n'
                       '[permissions.build.foo_bar]\nenv-access = ["B"]\nsandbox = "native"\n'
                       'limits = { time = "5m", memory = "1GiB" }\n')
    g = p.resolve("build", "foo-bar", "1.0.0")
    assert g.env == ("A", "B") and g.native and (g.limits.time_s, g.limits.memory) == (300, 1 << 30)
    assert [str(s) for s in g.entries] == [f"{p.source}:1 [permissions.build.foo-bar]",
                                           f"{p.source}:4 [permissions.build.foo_bar]"]


@pytest.mark.parametrize(
    "permit, deny, question, target, allowed",
    [
        ('env-access = ["OPENSSL_*"]', 'env-access = { action = "deny", vars = ["OPENSSL_SECRET"] }',
         "env", "OPENSSL_SECRET", False),
        ('env-access = ["OPENSSL_*"]', 'env-access = { action = "deny", vars = ["OPENSSL_SECRET"] }',
         "env", "OPENSSL_DIR", True),
        ('env-access = ["A"]', 'env-access = { action = "deny", vars = ["*"] }', "env", "A", False),
        ('env-access = ["A"]', 'env-access = { action = "deny" }', "env", "A", False),
        ('directives = ["rustc-env"]', 'directives = { action = "deny", list = ["rustc-env=LD_*"] }',
         "directive", "rustc-env=LD_PRELOAD", False),
        ('directives = ["rustc-env"]', 'directives = { action = "deny", list = ["rustc-env=LD_*"] }',
         "directive", "rustc-env=GIT_HASH", True),
        ('network-access = ["h:*"]', 'network-access = { action = "deny", routes = ["h:22"] }', "route", "h:22", False),
        ('network-access = ["h:*"]', 'network-access = { action = "deny", routes = ["h:22"] }', "route", "h:80", True),
        ('process-spawn = ["cc"]', 'process-spawn = { action = "deny", programs = ["cc"] }', "program", "cc", False),
        ('filesystem-access = { action = "permit", paths = ["/data"] }',
         'filesystem-access = { action = "deny", paths = ["/data/secret"] }', "read", "/data/public", False),
        ('filesystem-access = { action = "permit", paths = ["/data/sub"] }',
         'filesystem-access = { action = "deny", paths = ["/data"] }', "read", "/data/sub/x", False),
        ('filesystem-access = { action = "permit", paths = ["/other"] }',
         'filesystem-access = { action = "deny", paths = ["/data"] }', "read", "/other/x", True),
        ('filesystem-access = { action = "permit", writable = ["/w"] }',
         'filesystem-access = { action = "deny", writable = ["/w"] }', "write", "/w/x", False),
        ('filesystem-access = { action = "permit", writable = ["/w"] }',
         'filesystem-access = { action = "deny", writable = ["/w"] }', "read", "/w/x", True),
    ],
)
def test_deny_wins_over_permit_from_any_entry(tmp_path: Path, permit: str, deny: str, question: str, target: str,
                                              allowed: bool) -> None:
    p = load(tmp_path, f"[permissions]\ncurated-defaults = false\n[permissions.build.foo-x]\n{permit}\n"
                       f"[permissions.build.foo_x]\n{deny}\n")
    assert p.resolve("build", "foo-x", "1.0.0").allows(question, target) is allowed


def test_a_permitted_tree_that_overlaps_a_denied_one_is_withheld(tmp_path: Path) -> None:
    # A WASI preopen cannot have a hole in it: what `readable` offers must be readable throughout.
    p = load(tmp_path, '[permissions]\ncurated-defaults = false\n[permissions.build.foo-x]\n'
                       'filesystem-access = { action = "permit", paths = ["/a", "/b"], writable = ["/w"] }\n'
                       '[permissions.build.foo_x]\n'
                       'filesystem-access = { action = "deny", paths = ["/a/x"], writable = ["/w/y"] }\n')
    g = p.resolve("build", "foo-x", "1.0.0")
    assert g.readable == ("/b", "/w") and g.writable == ()
    assert not g.allows_read("/a/other") and g.allows_read("/b/x") and g.allows_read("/w/z")
    assert not g.allows_write("/w/z")


def test_relative_paths_are_relative_to_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    sub = tmp_path / "conf"
    sub.mkdir()
    p = load(sub, '[permissions.build.foo]\nfilesystem-access = { action = "permit", paths = ["data", "../shared", '
                  '"./a/../b"], writable = ["target/gen"] }\nprocess-spawn = ["bin/tool", "cc"]\n')
    g = p.resolve("build", "foo", "1.0.0")
    assert g.readable == tuple(sorted([str(sub / "data"), str(tmp_path / "shared"), str(sub / "b"),
                                       str(sub / "target/gen")]))
    assert g.writable == (str(sub / "target/gen"),)
    assert g.programs == (str(sub / "bin/tool"), "cc")


GRANT_SPELLINGS = ["VERSION", "./VERSION", "member/../VERSION", "./member/..//VERSION", "VERSION/", "VERSION/.",
                   "{ws}/VERSION", "{ws}//VERSION", "/{ws}/./VERSION", "{ws}/member/../VERSION",
                   "/../..{ws}/VERSION", "../{name}/VERSION"]
REQUEST_SPELLINGS = ["{ws}/VERSION", "{ws}//VERSION", "/{ws}/VERSION", "{ws}/member/../VERSION", "{ws}/./VERSION/",
                     "/../{ws}/VERSION"]


@pytest.mark.parametrize("spelling", GRANT_SPELLINGS)
def test_every_spelling_of_a_granted_path_grants_every_spelling_of_it(tmp_path: Path, spelling: str) -> None:
    ws = str(tmp_path)
    written = spelling.format(ws=ws, name=tmp_path.name)
    g = load(tmp_path, f'[permissions.build.foo]\nfilesystem-access = {{ action = "permit", paths = ["{written}"] }}\n'
                       ).resolve("build", "foo", "1.0.0")
    assert g.readable == (os.path.join(ws, "VERSION"),)
    for request in REQUEST_SPELLINGS:
        assert g.allows_read(request.format(ws=ws)), request
    for other in ("{ws}/VERSION2", "{ws}/secret.txt", "{ws}/VERSION/../secret.txt", "{ws}/../VERSION"):
        assert not g.allows_read(other.format(ws=ws)), other


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    g = grant_of(tmp_path, 'filesystem-access = { action = "permit", paths = ["~/.config/foo"], writable = ["~/out"] }')
    assert g.readable == ("/home/someone/.config/foo", "/home/someone/out") and g.writable == ("/home/someone/out",)


def test_no_grant_is_reached_through_what_a_build_script_may_write(tmp_path: Path) -> None:
    """A path below a directory some crate may write (its own writable grant, another crate's, one the
    owner's link leads into) could be made a link to anywhere by that crate's script while it is opened
    (a preopen, a view, a granted program's rule): the policy is refused, with the entry to write instead.
    The writable directory itself, a path beside it and a tree holding it are fine."""
    gen = tmp_path / "gen"
    (gen / "inputs").mkdir(parents=True)
    (tmp_path / "via").symlink_to(gen)
    refused = [
        ('[permissions.build.a]\nfilesystem-access = { action = "permit", paths = ["gen/inputs"], writable = ["gen"] }',
         "paths[0]", "[permissions.build.a]"),
        ('[permissions.build.a]\nfilesystem-access = { action = "permit", paths = ["gen/x.json"] }\n'
         '[permissions.build.b]\nfilesystem-access = { action = "permit", writable = ["./gen/"] }',
         "paths[0]", "[permissions.build.b]"),
        ('[permissions.build.a]\nfilesystem-access = { action = "permit", writable = ["gen/out"] }\n'
         '[permissions.build.b]\nfilesystem-access = { action = "permit", writable = ["gen"] }',
         "writable[0]", "[permissions.build.b]"),
        ('[permissions.build.a]\nfilesystem-access = { action = "permit", paths = ["via/inputs"] }\n'
         '[permissions.build.b]\nfilesystem-access = { action = "permit", writable = ["gen"] }',
         "paths[0]", "[permissions.build.b]"),
    ]
    for text, key, owner in refused:
        with pytest.raises(PolicyError) as err:
            load_text(text, file="p.toml", base=tmp_path, where="top-level")
        assert err.value.key.endswith(key) and owner in err.value.expected, text
        assert f'grant "{gen}" itself instead' in err.value.expected
    fine = ('[permissions.build.a]\nfilesystem-access = { action = "permit", paths = ["gen", "via", "."], '
            'writable = ["gen"] }\n[permissions.build.b]\nfilesystem-access = { action = "permit", '
            'paths = ["gen"], writable = ["gen", "other"] }')
    policy = load_text(fine, file="p.toml", base=tmp_path, where="top-level")
    assert policy.resolve("build", "b", "1.0.0").writable == (str(gen), str(tmp_path / "other"))


def test_workspace_policy_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    write(tmp_path, WORKSPACE.replace('env-access = ["FROM_WORKSPACE"]',
                                      'filesystem-access = { action = "permit", paths = ["assets"] }'), "Cargo.toml")
    found, _ = discover(tmp_path, {})
    assert found.where == "workspace"
    assert found.resolve("build", "foo", "1.0.0").readable == (str(tmp_path / "assets"),)


# --- digests ----------------------------------------------------------------------------------------------

BASE = ('[permissions.build.foo-x]\nenv-access = ["A", "B"]\n'
        'filesystem-access = { action = "permit", paths = ["/x"] }\n[permissions.build.bar]\nenv-access = ["C"]\n')


@pytest.mark.parametrize(
    "edited, foo_changes",
    [
        (BASE, False),
        ("# a new comment\n\n\n" + BASE, False),  # every line moves
        (BASE.replace('env-access = ["C"]', 'env-access = ["C", "D"]'), False),  # another crate's entry
        (BASE + '[permissions.macro.foo-x]\nenv-access = ["M"]\n', False),  # another kind
        (BASE + '[permissions.build.foo-y]\nenv-access = ["M"]\n', False),
        (BASE + '[[permissions.build.foo_x]]\nversion = "^2"\nenv-access = ["V2"]\n', False),  # other versions
        (BASE.replace('["A", "B"]', '["B", "A"]'), False),  # order
        (BASE.replace('["A", "B"]', '["A", "B", "A"]'), False),  # duplicates
        (BASE + '[permissions.build.foo_x]\nenv-access = ["A"]\n', False),  # granted twice
        (BASE.replace('["A", "B"]', '["A"]'), True),
        (BASE.replace('"/x"', '"/y"'), True),
        (BASE + '[permissions.build.foo_x]\nenv-access = { action = "deny", vars = ["A"] }\n', True),
        (BASE + '[permissions.build.foo_x]\nsandbox = "native"\n', True),
        (BASE + '[permissions.build.foo_x]\nlimits = { time = "9m" }\n', True),
        ('[permissions]\nmode = "warn"\n' + BASE, True),
    ],
)
def test_digest_changes_only_with_what_the_crate_is_granted(tmp_path: Path, edited: str, foo_changes: bool) -> None:
    before = load(tmp_path, BASE).resolve("build", "foo-x", "1.0.0").digest()
    after = load(tmp_path, edited).resolve("build", "foo-x", "1.0.0").digest()
    assert (before != after) is foo_changes
    assert re.fullmatch(r"[0-9a-f]{64}", before)


def test_digest_is_stable_across_processes(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    code = ("import sys; from pathlib import Path; from shim.policy import load_file; "
            "print(load_file(Path(sys.argv[1]), where='top-level').resolve('build', 'foo-x', '1.0.0').digest())")
    digests = {subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert digests == {load_file(path, where="top-level").resolve("build", "foo-x", "1.0.0").digest()}


# --- curated defaults -------------------------------------------------------------------------------------

def test_curated_defaults_load_and_apply(tmp_path: Path) -> None:
    g = Policy().resolve("build", "openssl_sys", "0.9.100")
    assert g.allows_env("OPENSSL_DIR") and g.allows_directive("rustc-link-lib", "ssl")
    assert g.allows_directive("rustc-link-search", "/usr/lib/x86_64-linux-gnu")
    assert not g.allows_directive("rustc-link-search", "/usr/lib/../../home/x")
    assert not g.allows_directive("rustc-link-search", "/home/me/lib")
    assert g.entries[0].file == "<cratecage curated defaults>"


def test_curated_defaults_can_be_denied_or_turned_off(tmp_path: Path) -> None:
    denied = load(tmp_path, '[permissions.build.openssl-sys]\nenv-access = { action = "deny", vars = ["OPENSSL_*"] }\n')
    assert not denied.resolve("build", "openssl-sys", "0.9.0").allows_env("OPENSSL_DIR")
    off = load(tmp_path, "[permissions]\ncurated-defaults = false\n")
    assert off.resolve("build", "openssl-sys", "0.9.0").env == ()


def test_every_curated_grant_says_why_it_is_safe() -> None:
    lines = CURATED.strip().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith(("#", " ", "[", "]")):
            assert lines[i - 1].startswith("#"), f"curated grant without a comment: {line}"
    for entry in policy.curated.entries():
        permits = {r.capability for r in entry.rules if r.action == "permit"}
        denies = {r.capability for r in entry.rules if r.action == "deny"}
        assert not entry.native and permits <= {"env-access", "directives"}
        assert denies <= {"process-spawn"} and all(r.lists for r in entry.rules)  # no blanket deny


# --- suggestions ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "capability, target, writable, question",
    [
        ("filesystem-access", "/etc/foo.conf", False, "read"),
        ("filesystem-access", "/var/cache/foo", True, "write"),
        ("env-access", "OPENSSL_DIR", False, "env"),
        ("network-access", "[::1]:5432", False, "route"),
        ("process-spawn", "pkg-config", False, "program"),
        ("directives", "rustc-env=LD_PRELOAD", False, "directive"),
        ("filesystem-access", '/tmp/we"ird\\pa\tth', False, "read"),
    ],
)
def test_suggestions_paste_and_permit(tmp_path: Path, capability: str, target: str, writable: bool,
                                      question: str) -> None:
    text = suggest_entry("build", "foo-sys", capability, target, writable=writable)
    p = load(tmp_path, "[permissions]\ncurated-defaults = false\n" + text + "\n")
    assert p.resolve("build", "foo-sys", "1.0.0").allows(question, target)


def test_suggestion_text() -> None:
    assert suggest_entry("build", "foo", "filesystem-access", "/etc/foo.conf") == (
        '[permissions.build.foo]\nfilesystem-access = { action = "permit", paths = ["/etc/foo.conf"] }')
    assert suggest_entry("macro", "a.b", "env-access", "X").startswith('[permissions.macro."a.b"]\n')


def test_public_surface_is_sorted() -> None:
    assert policy.__all__ == sorted(policy.__all__)
    assert {"PolicyError", "Policy", "Grant", "load_file", "discover", "suggest_entry"} <= set(policy.__all__)


# --- fuzzing: anything either loads or is a PolicyError ---------------------------------------------------

VOCAB = ["permissions", "build", "macro", "run", "mode", "curated-defaults", "foo", "foo-bar", "foo_bar",
         "version", "sandbox", "limits", "time", "memory", "action", "paths", "writable", "vars", "routes",
         "programs", "list", *CAPABILITIES, "a b", "é", ""]
SCALAR_STRINGS = ["permit", "deny", "warn", "enforce", "native", "^1.2", ">=1, <2", "*", "5m", "2GiB", "/x", "rel",
                  "~/x", "~nobody-here/x", "127.0.0.1:80", "[::1]:*", "::1", "h:0", "A*", "OPENSSL_*", "rustc-env=X",
                  "rustc-link-arg", "1.x", "", "\x7f", "a\nb"]

scalars = st.one_of(st.sampled_from(SCALAR_STRINGS), st.text(max_size=8), st.integers(-2, 2**70), st.booleans(),
                    st.floats(allow_nan=True), st.dates())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(VOCAB) | st.text(max_size=4), inner, max_size=4)),
    max_leaves=12)


def to_toml(value, key_path=()) -> str:  # noqa: ANN001 - test helper
    """A TOML document for a dict: nested dicts become [tables], the rest inline values."""
    lines, tables = [], []
    for key, item in value.items():
        if isinstance(item, dict):
            tables.append((key, item))
        else:
            lines.append(f"{suggest_key(key)} = {inline(item)}")
    out = "\n".join(lines) + "\n"
    for key, item in tables:
        path = key_path + (key,)
        out += f"[{'.'.join(suggest_key(k) for k in path)}]\n" + to_toml(item, path)
    return out


def suggest_key(key: str) -> str:
    from shim.policy.suggest import toml_key
    return toml_key(key)


def inline(value) -> str:  # noqa: ANN001
    from shim.policy.suggest import toml_string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "nan" if value != value else ("inf" if value == float("inf") else "-inf" if value == float("-inf")
                                              else repr(value))
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{suggest_key(k)} = {inline(v)}" for k, v in value.items()) + "}"
    return value.isoformat()


documents = st.dictionaries(st.sampled_from(["permissions", "other"]), st.dictionaries(
    st.sampled_from(VOCAB), values, max_size=4), max_size=2)


ITEMS = ["/usr/include", "data", "~/x", "OPENSSL_*", "PKG_CONFIG_PATH", "127.0.0.1:5432", "[::1]:*", "cc",
         "rustc-link-arg", "rustc-env=LD_*", *SCALAR_STRINGS]
rules = st.fixed_dictionaries(
    {"action": st.sampled_from(["permit", "deny", "permit", "deny", "maybe"])},
    optional={k: st.lists(st.sampled_from(ITEMS), max_size=3)
              for k in ("paths", "writable", "vars", "routes", "programs", "list")})
entries = st.fixed_dictionaries({}, optional={
    **{cap: rules | st.lists(st.sampled_from(ITEMS), max_size=2) for cap in CAPABILITIES},
    "version": st.sampled_from(["^1", ">=1.2, <2", "*", "1.2.x", "=1.2.3", "~1.2.3", "2", "nope"]),
    "sandbox": st.sampled_from(["native", "native", "wasm"]),
    "limits": st.fixed_dictionaries({}, optional={"time": st.sampled_from(["5m", 90, "0", "x"]),
                                                   "memory": st.sampled_from(["2GiB", 1024, -1])}),
})
policies = st.fixed_dictionaries({"permissions": st.fixed_dictionaries(
    {}, optional={"mode": st.sampled_from(["enforce", "warn", "loud"]), "curated-defaults": st.booleans(),
                  **{kind: st.dictionaries(st.sampled_from(["foo", "foo-bar", "foo_bar", "openssl-sys"]),
                                           entries | st.lists(entries, min_size=1, max_size=2), max_size=3)
                     for kind in ("build", "macro", "run")}})})


def loads_or_policy_error(tmp_path: Path, text: str, where: str = "top-level") -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        found = load_file(path, where=where)
    except PolicyError as err:
        assert err.render().startswith("cratecage: ") and "\n" not in err.render()
        return
    for kind in ("build", "macro", "run"):
        for crate in ("foo", "foo-bar", "openssl-sys"):
            g = found.resolve(kind, crate, "1.2.3")
            g.digest()
            g.allows_read("/x"), g.allows_env("A"), g.allows_route("h", 1), g.allows_directive("rustc-env", "X")


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(document=documents)
def test_fuzz_generated_documents_load_or_fail_cleanly(tmp_path: Path, document: dict) -> None:
    loads_or_policy_error(tmp_path, to_toml(document))


@FUZZ
@given(document=st.dictionaries(st.sampled_from(["permissions"]), st.dictionaries(
    st.sampled_from(["build", "macro", "run"]), st.dictionaries(st.sampled_from(["foo", "foo-bar", "x"]), values,
                                                                  max_size=3), max_size=2), min_size=1))
def test_fuzz_entry_shaped_documents_load_or_fail_cleanly(tmp_path: Path, document: dict) -> None:
    loads_or_policy_error(tmp_path, to_toml(document))


@FUZZ
@given(document=policies)
def test_fuzz_policy_shaped_documents_load_or_fail_cleanly(tmp_path: Path, document: dict) -> None:
    loads_or_policy_error(tmp_path, to_toml(document))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("[]{}=\"'.,#\n\\ -_*:~/")) | st.characters(), max_size=200))
def test_fuzz_random_text_loads_or_fails_cleanly(tmp_path: Path, text: str) -> None:
    loads_or_policy_error(tmp_path, text)


VALID = ('[permissions]\nmode = "warn"\n[permissions.build.foo]\nversion = "^1"\n'
         'filesystem-access = { action = "permit", paths = ["/a", "b"], writable = ["c"] }\n'
         'network-access = { action = "permit", routes = ["[::1]:80"] }\nlimits = { time = "5m" }\n'
         '[[permissions.macro.m]]\nsandbox = "native"\n')


@FUZZ
@given(cuts=st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 8),
                               st.text(alphabet=string.printable, max_size=6)), max_size=4))
def test_fuzz_mutated_policies_load_or_fail_cleanly(tmp_path: Path, cuts: list[tuple[int, int, str]]) -> None:
    text = VALID
    for at, drop, insert in cuts:
        text = text[:at] + insert + text[at + drop:]
    loads_or_policy_error(tmp_path, text)
    in_manifest = "[workspace.metadata]\n" + text.replace("[permissions", "[workspace.metadata.permissions")
    loads_or_policy_error(tmp_path, in_manifest, where="workspace")


def test_loading_does_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    path = write(tmp_path, '[permissions.build.foo]\nfilesystem-access = { action = "permit", paths = ["d"] }\n')
    cwd = os.getcwd()
    try:
        os.chdir("/")
        first = load_file(path, where="top-level").resolve("build", "foo", "1.0.0").digest()
        os.chdir(tmp_path)
        assert load_file(Path("cratecage.toml"), where="top-level").resolve("build", "foo", "1.0.0").digest() == first
    finally:
        os.chdir(cwd)


# --- programs: may-run, explicit denies, entries for every package ---------------------------------------

def test_may_run_lists_what_granted_programs_may_start(tmp_path: Path) -> None:
    g = grant_of(tmp_path, 'process-spawn = { action = "permit", programs = ["sh"], may-run = ["sed", "~/tools"] }')
    assert g.programs == ("sh",) and g.may_run == (os.path.expanduser("~/tools"), "sed")
    assert not g.allows_program("sed")  # may-run starts nothing by itself: only a granted program's child
    shorthand = grant_of(tmp_path, 'process-spawn = ["cc"]')
    assert shorthand.programs == ("cc",) and shorthand.may_run == ()


def test_a_deny_takes_a_program_out_of_the_grant_and_is_named(tmp_path: Path) -> None:
    g = grant_of(tmp_path, 'process-spawn = { action = "permit", programs = ["git", "cc"] }\n'
                           '[permissions.build."*"]\nprocess-spawn = { action = "deny", programs = ["git"] }')
    assert g.programs == ("cc",) and not g.allows_program("git")
    assert g.denies_program("git") and g.denies_program("/usr/bin/git") and not g.denies_program("cc")


@pytest.mark.parametrize("body", [
    'process-spawn = { action = "permit", programs = ["git"] }',
    'env-access = ["HOME"]',
    'sandbox = "native"',
    'limits = { time = "1h" }',
])
def test_an_entry_for_every_package_may_only_deny(tmp_path: Path, body: str) -> None:
    with pytest.raises(PolicyError, match=r'every package \("\*"\) may only deny') as err:
        load(tmp_path, f'[permissions.build."*"]\n{body}\n')
    assert err.value.line == 2


def test_source_narrows_an_entry_to_registry_packages(tmp_path: Path) -> None:
    p = load(tmp_path, '[permissions.build."*"]\nsource = "registry"\n'
                       'process-spawn = { action = "deny", programs = ["git"] }\n')
    assert p.resolve("build", "anything", "1.0.0", "registry").denies_program("git")
    assert not p.resolve("build", "anything", "1.0.0").denies_program("git")  # a workspace member, a path dep
    with pytest.raises(PolicyError, match='expected "registry"'):
        load(tmp_path, '[permissions.build.foo]\nsource = "git"\n')


def test_curated_denies_git_to_registry_packages_only() -> None:
    assert Policy().resolve("build", "wasm-bindgen-shared", "0.2.100", "registry").denies_program("git")
    assert not Policy().resolve("build", "my-member", "0.1.0").denies_program("git")
