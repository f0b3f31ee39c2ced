"""Path attacks on a build script's sandbox, through real cargo and the real wrapper on a copy of
fixtures/path-attacks, whose member's build script (and a peer's, which can run beside it) runs the cases the
test writes, with its file operations in a build-dependency (see fixtures/path-attacks/helper/src/lib.rs).
A harmless secret lies outside every grant; each attack comes with a harmless twin that works.

  - raw WASI past the facade: `..` and planted links from every preopen stay inside it, and no preopen is
    wider than the grants;
  - another run's scratch space: a crate granted the system temp dir reads and writes nothing granted to a
    build script running beside it (the run directories live in the target directory);
  - granted programs: a link the script can write never stands in for a granted program, the granted name
    picks the profile, a working directory reached through a planted link reads nothing more, and a hard
    link out of a read-only tree cannot be made.
The workspace and target directory are shared: each test writes the policy and the cases, and the scripts
rerun because both changed."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

from shim.confine import landlock

import target_dirs
from conftest import FIXTURES, Cargo, CargoRun, write_test_env

pytestmark = pytest.mark.integration

CASE = re.compile(r"warning: ([\w-]+)@0\.1\.0: case (.*?) => (.*)$", re.M)
MEMBER, PEER = "path-attacks", "path-attacks-peer"


def new_arena(root: Path) -> Path:
    """fixtures/path-attacks copied to `<root>/ws`, a harmless secret beside it, `data/d.txt` to grant and an
    empty `tools/` (also test_build_drivers' arena)."""
    ws = root / "ws"
    shutil.copytree(FIXTURES / "path-attacks", ws)
    (root / "secret.txt").write_text(f"harmless secret beside the workspace {secrets.token_hex(8)}\n")
    (ws / "data").mkdir()
    (ws / "data" / "d.txt").write_text("granted data\n")
    (ws / "tools").mkdir()
    return ws


@pytest.fixture(scope="module")
def ws(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One arena per layout: a target dir holding both layouts' units would show two OUT_DIRs."""
    ws = new_arena(tmp_path_factory.mktemp(f"path-attacks-{cargo.layout}").resolve())
    (ws / "secret.txt").write_text(f"harmless secret in the workspace {secrets.token_hex(8)}\n")
    return ws


def secrets_of(ws: Path) -> list[str]:
    return [(ws / "secret.txt").read_text().strip(), (ws.parent / "secret.txt").read_text().strip()]


def build(cargo: Cargo, ws: Path, policy: str, member: list[str], peer: list[str] = (), *args: str,
          env: dict[str, str] | None = None) -> CargoRun:
    (ws / "cratecage.toml").write_text(policy.replace("{ws}", str(ws)))
    for package, cases in (("member", member), ("peer", peer)):
        write_test_env(ws / package, {"CASES": "".join(f"{c}\n" for c in cases).replace("{ws}", str(ws))})
    return cargo(ws, "build", *args, wrapped=True, target_dir=ws / "target", extra_env=env, check=False)


def outcomes(run: CargoRun, ws: Path, crate: str = MEMBER) -> dict[str, str]:
    """case as written (`{ws}` for the workspace) -> what the script got; cargo may show a line twice."""
    found: dict[str, str] = {}
    for who, case, outcome in CASE.findall(run.proc.stderr):
        if who == crate:
            case = case.replace(str(ws), "{ws}")
            assert found.setdefault(case, outcome) == outcome, case
    return found


def grants(*entries: str, crate: str = MEMBER) -> str:
    return f"[permissions.build.{crate}]\n" + "".join(f"{e}\n" for e in entries)


def out_dir(ws: Path) -> str:
    (found,) = target_dirs.out_dirs(ws / "target", MEMBER)
    return str(found)


ESCAPES = ["raw-read $M ../secret.txt", "raw-read $M src/../../secret.txt", "raw-read . ../secret.txt",
           "raw-read $O $UP40{ws}/secret.txt", "raw-read $T $UP40{ws}/secret.txt",
           "raw-read {ws}/data ../secret.txt", "raw-read {ws}/tools ../../secret.txt",
           "climb {ws} $O/ws", "raw-read $O ws/secret.txt",
           "raw-symlink {ws}/tools ../secret.txt up", "raw-read {ws}/tools up",
           "raw-symlink $O /etc/hostname abs", "raw-read $O abs",
           "raw-link $M build.rs $O stolen", "raw-link {ws}/data d.txt {ws}/tools stolen"]
TWINS = ["raw-read $M build.rs", "raw-read . build.rs", "raw-read {ws}/data d.txt", "write $O/own.txt",
         "symlink own.txt $O/in", "raw-read $O in", "raw-link $O own.txt $O linked", "raw-read $O linked"]


def test_raw_wasi_stays_inside_each_preopen_and_none_is_wider_than_the_grants(cargo: Cargo, ws: Path) -> None:
    """The facade is a convenience; wasmtime's preopens are the boundary. A script (here its build-dependency)
    calling path_open, path_symlink and path_link itself, with `..`, through links it planted, from every
    preopen, reaches nothing outside the preopen; and the preopens are exactly the package (also as "."),
    OUT_DIR, the temp dir and the grants."""
    policy = grants('filesystem-access = { action = "permit", paths = ["data"], writable = ["tools"] }')
    run = build(cargo, ws, policy, ["preopens", *ESCAPES, *TWINS, "remove $O/in", "remove $O/linked"])
    got = outcomes(run, ws)
    out = out_dir(ws)
    preopens = got["preopens"].removeprefix("ok ").split(",")
    temp = [p for p in preopens if "/cratecage/tmp/run-" in p]
    assert len(temp) == 1 and temp[0].startswith(str(ws / "target" / "cratecage" / "tmp")), preopens
    assert sorted(p for p in preopens if p not in temp) == sorted(
        [str(ws / "member"), ".", out, str(ws / "data"), str(ws / "tools")]), preopens
    for case in ESCAPES:
        if case.startswith(("raw-read", "raw-link")) or "/etc/" in case:
            assert got[case].startswith("err "), (case, got[case])
    assert got["raw-read $M build.rs"].startswith("ok //! Runs the cases") and got["raw-read . build.rs"] == \
        got["raw-read $M build.rs"]
    assert got["raw-read {ws}/data d.txt"] == "ok granted data"
    assert got["raw-read $O in"] == got["raw-read $O linked"] == "ok written", got
    text = run.proc.stderr + run.proc.stdout
    assert not any(secret in text for secret in secrets_of(ws))
    assert not (ws / "tools" / "stolen").exists() and not (Path(out) / "stolen").exists()
    # the links planted out of OUT_DIR and the writable grant fail the build and are gone
    assert not run.ok and "symbolic link in OUT_DIR points outside it" in text
    assert "symbolic link in the writable grant" in text
    assert not (Path(out) / "ws").is_symlink() and not (ws / "tools" / "up").is_symlink()


def test_a_grant_of_the_temp_dir_reaches_no_file_granted_to_a_script_running_beside_it(
        cargo: Cargo, ws: Path, tmp_path: Path) -> None:
    """Each run shows granted files through a view of hard links in its scratch space; in the system's temp
    dir (TMPDIR), a crate granted that directory read the peer's granted file there and, granted it
    writable, wrote through the link to the host file. The two scripts meet (each waits for the other's
    mark), so the peer's view exists while the member looks; the member finds what the test put in its
    grant (the twin) and nothing of the peer's."""
    system_tmp, sync, peer_secret = tmp_path / "tmp", tmp_path / "sync", tmp_path / "peer" / "key.txt"
    system_tmp.mkdir()
    sync.mkdir()
    peer_secret.parent.mkdir()
    peer_secret.write_text(f"harmless, granted to the peer alone {secrets.token_hex(8)}\n")
    (system_tmp / "planted.txt").write_text("put here by the test\n")
    policy = (grants(f'filesystem-access = {{ action = "permit", writable = ["{system_tmp}", "{sync}"] }}')
              + grants(f'filesystem-access = {{ action = "permit", paths = ["{peer_secret}"], '
                       f'writable = ["{sync}"] }}', crate=PEER))
    member = [f"write {sync}/member-started", f"wait {sync}/peer-started 60000",
              f"hunt {system_tmp} key.txt 3000 TAMPERED", f"hunt {system_tmp} planted.txt 0",
              f"write {sync}/member-done"]
    peer = [f"write {sync}/peer-started", f"read {peer_secret}", f"wait {sync}/member-done 60000"]
    run = build(cargo, ws, policy, member, peer, "-j4", env={"TMPDIR": str(system_tmp)})
    got, theirs = outcomes(run, ws), outcomes(run, ws, PEER)
    assert got.get(f"wait {sync}/peer-started 60000") == "ok", run.proc.stderr[-3000:]  # they did run side by side
    assert theirs[f"read {peer_secret}"] == f"ok {peer_secret.read_text().strip()}"
    assert got[f"hunt {system_tmp} planted.txt 0"] == f"ok {system_tmp}/planted.txt put here by the test"
    assert got[f"hunt {system_tmp} key.txt 3000 TAMPERED"] == "err not found"
    assert "TAMPERED" not in peer_secret.read_text()
    assert not any(peer_secret.read_text().strip() in outcome for outcome in got.values())
    assert run.ok, run.proc.stderr[-3000:]
    assert not list(system_tmp.glob("cratecage-run-*"))


@pytest.mark.skipif(landlock.abi_version() < 1, reason="granted programs need Landlock")
def test_a_granted_program_is_reached_only_through_what_the_script_cannot_write(cargo: Cargo, ws: Path) -> None:
    """`env`, `sh` and `{ws}/tools/gen` are granted, tools is writable. Swapping the granted path for a link to
    another binary, or naming a granted program through a link planted in OUT_DIR, is refused; a host link
    named `cc` that leads to the granted env runs env, but without the C compiler's profile (which would let
    it run /usr/bin/id). The twin: sh granted by name runs (a build driver: it may run the system's tools)."""
    (ws / "bin").mkdir(exist_ok=True)
    cc = ws / "bin" / "cc"
    env = os.path.realpath(shutil.which("env") or "/usr/bin/env")
    if not cc.is_symlink():
        cc.symlink_to(env)
    policy = grants('filesystem-access = { action = "permit", paths = ["data"], writable = ["tools"] }',
                    'process-spawn = { action = "permit", programs = ["env", "sh", "{ws}/tools/gen"] }')
    ident = shutil.which("id") or "/usr/bin/id"
    cases = [f"climb {ident} {{ws}}/tools/gen", "spawn {ws}/tools/gen -",
             f"climb {env} $O/cc", f"spawn $O/cc - {ident}",
             f"spawn {{ws}}/bin/cc - {ident}",
             "spawn sh - -c echo%20granted", f"spawn env - {ident}"]
    run = build(cargo, ws, policy, cases)
    got = outcomes(run, ws)
    assert got["spawn {ws}/tools/gen -"].startswith("err "), got
    assert got[f"spawn $O/cc - {ident}"].startswith("err "), got
    assert got[f"spawn {{ws}}/bin/cc - {ident}"].startswith("ok exit status: 126 "), got
    assert got[f"spawn env - {ident}"].startswith("ok exit status: 126 "), got
    assert got["spawn sh - -c echo%20granted"] == 'ok exit status: 0 out="granted" err=""'
    text = run.proc.stderr + run.proc.stdout
    assert "uid=" not in text
    assert "is in a directory the build script can write" in text
    assert not run.ok


@pytest.mark.skipif(landlock.abi_version() < 1, reason="granted programs need Landlock")
def test_paths_through_planted_links_give_a_program_nothing_more(cargo: Cargo, ws: Path) -> None:
    """A working directory inside OUT_DIR by its text, elsewhere through a planted link, lets a granted
    program read only what its grants allow; a hard link out of a read-only tree cannot be made; a search
    path with `..` after a link is no path inside OUT_DIR. The twins work."""
    policy = grants('filesystem-access = { action = "permit", paths = ["data"] }',
                    'process-spawn = { action = "permit", programs = ["cat", "ln"] }')
    cases = ["climb {ws} $O/ws", "spawn cat $O/ws secret.txt", "spawn cat $O/ws/data d.txt",
             "spawn ln - {ws}/secret.txt $O/hard", "read $O/hard", "spawn ln - {ws}/data/d.txt $O/hard2",
             "write $O/own.txt", "spawn ln - $O/own.txt $O/hard3", "read $O/hard3", "remove $O/ws",
             "mkdir $O/lib", "symlink lib $O/l",
             "print cargo:rustc-link-search=native=$O/l/../..", "print cargo:rustc-link-search=native=$O/l"]
    run = build(cargo, ws, policy, cases)
    got = outcomes(run, ws)
    assert "Permission denied" in got["spawn cat $O/ws secret.txt"], got
    assert got["spawn cat $O/ws/data d.txt"] == 'ok exit status: 0 out="granted data" err=""'
    for case in ("spawn ln - {ws}/secret.txt $O/hard", "spawn ln - {ws}/data/d.txt $O/hard2"):
        assert got[case].startswith("ok exit status: 1 "), (case, got[case])
    assert got["read $O/hard"].startswith("err NotFound")
    assert got["read $O/hard3"] == "ok written"  # a hard link inside OUT_DIR is fine
    text = run.proc.stderr + run.proc.stdout
    assert not any(secret in text for secret in secrets_of(ws))
    assert "search path outside OUT_DIR" in text and f"rustc-link-search=native={out_dir(ws)}/l\n" in \
        run.proc.stdout + run.proc.stderr
    assert not run.ok  # the refused search path


@pytest.mark.skipif(landlock.abi_version() < 1, reason="granted programs need Landlock")
def test_a_grant_below_a_writable_directory_is_refused_and_the_directory_itself_holds(cargo: Cargo, ws: Path) -> None:
    """Granted `gen/inputs` and a writable `gen`, the script replaced gen/inputs with a link out of the
    workspace, and a granted cat (whose Landlock rule for gen/inputs was opened through that link) read the
    secret beside the workspace; another crate's writable `gen` did the same to this one's grant while both
    ran. Such a policy is refused before anything runs. Granted `gen` itself, the same link leads nowhere."""
    (ws / "gen" / "inputs").mkdir(parents=True, exist_ok=True)
    cases = ["rmdir {ws}/gen/inputs", f"climb {ws.parent} {{ws}}/gen/inputs",
             "spawn cat - {ws}/gen/inputs/secret.txt", "read {ws}/gen/inputs/secret.txt",
             "remove {ws}/gen/inputs", "mkdir {ws}/gen/inputs"]
    nested = grants('filesystem-access = { action = "permit", paths = ["gen/inputs"], writable = ["gen"] }',
                    'process-spawn = { action = "permit", programs = ["cat"] }')
    run = build(cargo, ws, nested, cases)
    assert not run.ok and "is reached through" in run.proc.stderr and 'grant "' in run.proc.stderr
    assert outcomes(run, ws) == {}  # nothing ran
    twin = grants('filesystem-access = { action = "permit", writable = ["gen"] }',
                  'process-spawn = { action = "permit", programs = ["cat"] }')
    run = build(cargo, ws, twin, cases)
    got = outcomes(run, ws)
    assert got["rmdir {ws}/gen/inputs"] == got["climb " + str(ws.parent) + " {ws}/gen/inputs"] == "ok", got
    assert "Permission denied" in got["spawn cat - {ws}/gen/inputs/secret.txt"], got
    assert got["read {ws}/gen/inputs/secret.txt"].startswith("err "), got
    text = run.proc.stderr + run.proc.stdout
    assert not any(secret in text for secret in secrets_of(ws))
    assert run.ok, text[-3000:]


def test_a_writable_grant_holding_the_target_directory_stops_the_run(cargo: Cargo, ws: Path) -> None:
    """Granted the workspace root writable, the script listed and could rewrite the target directory: other
    crates' build-script launchers and binaries, which cargo runs natively next. Such a run stops before the
    script starts; a writable directory inside the target directory works and shows nothing else of it."""
    cases = ["list {ws}/target", "write {ws}/target/sqlx/made.txt"]
    run = build(cargo, ws, grants('filesystem-access = { action = "permit", writable = ["."] }'), cases)
    assert not run.ok and f"the writable grant {ws} holds cargo's target directory ({ws / 'target'})" in run.proc.stderr
    assert outcomes(run, ws) == {}
    (ws / "target" / "sqlx").mkdir(exist_ok=True)
    run = build(cargo, ws, grants('filesystem-access = { action = "permit", writable = ["target/sqlx"] }'), cases)
    got = outcomes(run, ws)
    assert got["write {ws}/target/sqlx/made.txt"] == "ok" and got["list {ws}/target"].startswith("err NotFound")
