"""Paths with `..` (issue 10 item 4): a workspace member's build script reading `<manifest>/../VERSION` gets
the granted file by every spelling, in enforce and warn mode; every spelling of a file it was not granted
is refused alike, with one denial naming the normalised path and one entry that, pasted, permits it; a
symbolic link planted in OUT_DIR changes nothing a `..` means. Real cargo through the real wrapper on a copy
of fixtures/dotdot, whose script runs the cases the test writes (see its build.rs)."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

import target_dirs
from conftest import FIXTURES, Cargo, CargoRun, write_test_env
from shim.confine import landlock

pytestmark = pytest.mark.integration

CRATE = "dotdot-member"
# How a script may name <workspace>/<file>: $M is its manifest dir (and cwd), $O its OUT_DIR, $UPn n "../".
SPELLINGS = ["$M/../{f}", "../{f}", "./../{f}", "src/../../{f}", "$M//..//{f}", "/$M/../{f}",
             "$M/./../member/../{f}", "/../../..$M/../{f}", "$O/$UP40$M/../{f}", "$M/../data-a/../{f}",
             "$O/$UP1500$M/../{f}"]  # longer than PATH_MAX, shorter once normalised
OPS = ["read", "metadata", "exists", "canonicalize"]
CASE = re.compile(r"case (\S+) (\S+)(?: \S+)? => (.*)$", re.M)
DENIAL = re.compile(r"filesystem-access (denied|not granted \(warn mode: permitted\)): (\w+) (\S+): ")
ENTRY = re.compile(r'filesystem-access = \{ action = "permit", (paths|writable) = \["([^"]*)"\] \}')


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    shutil.copytree(FIXTURES / "dotdot", root)
    (root / "VERSION").write_text(f"7.{secrets.randbelow(10**6)}.1\n")
    (root / "secret.txt").write_text(f"harmless, not granted {secrets.token_hex(8)}\n")
    for name in ("data-a", "data-b"):
        (root / name).mkdir()
        (root / name / f"{name}.txt").write_text(f"{name} contents\n")
    return root


def build(cargo: Cargo, ws: Path, policy: str, cases: list[str]) -> CargoRun:
    (ws / "cratecage.toml").write_text(policy)
    write_test_env(ws / "member", {"CASES": "\n".join(cases) + "\n"})
    return cargo(ws, "build", wrapped=True, target_dir=ws / "target", check=False)


def policy(*paths: str, mode: str = "enforce") -> str:
    items = ", ".join(f'"{p}"' for p in paths)
    return (f'[permissions]\nmode = "{mode}"\n[permissions.build.{CRATE}]\n'
            f'filesystem-access = {{ action = "permit", paths = [{items}] }}\n')


def outcomes(run: CargoRun) -> dict[tuple[str, str], str]:
    """(op, path as written) -> what the script got; cargo may show a line twice, never two answers."""
    found: dict[tuple[str, str], str] = {}
    for op, path, outcome in CASE.findall(run.proc.stderr + run.proc.stdout):
        assert found.setdefault((op, path), outcome) == outcome, (op, path)
    return found


def denials(run: CargoRun) -> set[tuple[str, str, str]]:
    return set(DENIAL.findall(run.proc.stderr))


def entries(run: CargoRun) -> set[tuple[str, str]]:
    return set(ENTRY.findall(run.proc.stderr))


def version_printed(ws: Path) -> str:
    binary = ws / "target" / "debug" / CRATE
    return subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.parametrize("mode, grant", [("enforce", "VERSION"), ("enforce", "./member/..//VERSION/"),
                                         ("enforce", "{ws}/member/../VERSION"), ("warn", "VERSION")])
def test_the_version_beside_the_workspace_arrives(cargo: Cargo, ws: Path, mode: str, grant: str) -> None:
    run = build(cargo, ws, policy(grant.format(ws=ws), mode=mode), [])
    assert run.ok, run.proc.stderr[-3000:]
    assert version_printed(ws) == f"workspace version {(ws / 'VERSION').read_text().strip()}"
    assert not denials(run), run.proc.stderr[-3000:]


def test_the_entry_a_denial_prints_is_the_one_that_permits_it(cargo: Cargo, ws: Path) -> None:
    run = build(cargo, ws, policy("data-a"), [])
    assert not run.ok
    assert denials(run) == {("denied", "read", str(ws / "VERSION"))}
    assert entries(run) == {("paths", str(ws / "VERSION"))}
    header = f"[permissions.build.{CRATE}]"
    entry = ENTRY.search(run.proc.stderr)
    assert entry and header in run.proc.stderr
    run = build(cargo, ws, f"{header}\n{entry.group(0)}\n", [])
    assert run.ok and not denials(run), run.proc.stderr[-3000:]
    assert version_printed(ws).endswith((ws / "VERSION").read_text().strip())


def spelling_cases() -> list[str]:
    return [f"{op} {s.format(f=f)}" for s in SPELLINGS for f in ("VERSION", "secret.txt") for op in OPS]


# A granted directory reached by `..` from another grant, and relative paths after a change of directory.
ROUTES = ["list $M/../data-a/../data-b", "read $M/../data-a/../data-b/data-b.txt", "chdir ..", "read VERSION",
          "read member/../VERSION", "read secret.txt", "chdir member", "read ../VERSION"]


@pytest.mark.parametrize("mode", ["enforce", "warn"])
def test_every_spelling_of_a_granted_file_works_and_of_an_ungranted_one_is_refused_alike(
        cargo: Cargo, ws: Path, mode: str) -> None:
    run = build(cargo, ws, policy("VERSION", "data-a", "data-b", mode=mode), spelling_cases() + ROUTES)
    got = outcomes(run)
    version, secret = (ws / "VERSION").read_text().strip(), (ws / "secret.txt").read_text().strip()
    wanted = {"read": f"ok {version}", "metadata": f"ok len={len(version) + 1}", "exists": "ok true",
              "canonicalize": f"ok {ws / 'VERSION'}"}
    for spelling in SPELLINGS:
        for op in OPS:
            assert got[(op, spelling.format(f="VERSION"))] == wanted[op], (op, spelling)
    # The ungranted file: one answer per operation whatever the spelling.
    for op in OPS:
        answers = {got[(op, s.format(f="secret.txt"))] for s in SPELLINGS}
        assert len(answers) == 1, (op, answers)
    secret_read = got[("read", SPELLINGS[0].format(f="secret.txt"))]
    assert got[("list", "$M/../data-a/../data-b")] == "ok data-b.txt"
    assert got[("read", "$M/../data-a/../data-b/data-b.txt")] == "ok data-b contents"
    assert got[("chdir", "..")] == f"ok {ws}" and got[("chdir", "member")] == f"ok {ws / 'member'}"
    for path in ("VERSION", "member/../VERSION", "../VERSION"):
        assert got[("read", path)] == f"ok {version}", path
    assert got[("read", "secret.txt")] == secret_read
    # One denial, naming the normalised path, with the one entry that permits it.
    status = "denied" if mode == "enforce" else "not granted (warn mode: permitted)"
    assert denials(run) == {(status, "read", str(ws / "secret.txt"))}, run.proc.stderr[-4000:]
    assert entries(run) == {("paths", str(ws / "secret.txt"))}
    if mode == "enforce":
        assert not run.ok
        assert secret_read.startswith("err NotFound") and secret not in run.proc.stderr + run.proc.stdout
    else:  # warn mode reads it, as any file, and reports it
        assert run.ok, run.proc.stderr[-3000:]
        assert secret_read == f"ok {secret}"


def out_dirs(ws: Path) -> list[Path]:
    return target_dirs.out_dirs(ws / "target", CRATE)


def test_a_link_planted_in_out_dir_never_leads_a_dotdot_to_an_ungranted_file(cargo: Cargo, ws: Path) -> None:
    cases = ["write $O/secret.txt",
             "symlink-up $M $O/m",  # $O/m/.. is the workspace root natively, where secret.txt lies
             "symlink-up / $O/root",
             "read $O/m/../secret.txt", "canonicalize $O/m/../secret.txt", "list $O/m/..",
             "read $O/m/../../secret.txt", "read $O/m/build.rs", "read $O/root$M/../secret.txt",
             "chdir $O/m", "read $O/$UP1500$M/../secret.txt",
             "write $O/$UP60$M/../planted.txt", "write $M/../VERSION", "mkdir $M/../data-a/../made",
             "hardlink $M/../VERSION $O/stolen", "write $O/stolen", "rename $M/src/../../VERSION $O/moved",
             "remove ./../VERSION", "symlink VERSION $M/../data-a/../link",
             "remove $O/m", "remove $O/root"]
    version = (ws / "VERSION").read_text()
    secret = (ws / "secret.txt").read_text().strip()
    run = build(cargo, ws, policy("VERSION", "data-a"), cases)
    got = outcomes(run)
    text = run.proc.stderr + run.proc.stdout
    assert not run.ok
    (out,) = out_dirs(ws)
    # `..` after the link means what it says: OUT_DIR's own file, never the link target's sibling.
    assert got[("read", "$O/m/../secret.txt")] == "ok written by dotdot"
    assert got[("canonicalize", "$O/m/../secret.txt")] == f"ok {out / 'secret.txt'}"
    assert got[("list", "$O/m/..")].startswith("ok ") and "secret.txt" in got[("list", "$O/m/..")].split(",")
    for case in (("read", "$O/m/../../secret.txt"), ("read", "$O/m/build.rs"), ("read", "$O/root$M/../secret.txt"),
                 ("chdir", "$O/m"), ("read", "$O/$UP1500$M/../secret.txt"),
                 ("write", "$O/$UP60$M/../planted.txt"), ("write", "$M/../VERSION"), ("mkdir", "$M/../data-a/../made"),
                 ("hardlink", "$M/../VERSION"), ("rename", "$M/src/../../VERSION"), ("remove", "./../VERSION"),
                 ("symlink", "VERSION")):
        assert got[case].startswith("err "), (case, got[case])
    assert secret not in text
    assert all(secret.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    assert not (ws / "planted.txt").exists() and not (ws / "made").exists() and not (ws / "link").is_symlink()
    assert (ws / "VERSION").read_text() == version
    # Every denial names a normalised path.
    for _status, _op, path in denials(run):
        assert path == str(Path(path)) and "/../" not in path and "//" not in path, path
    assert ("denied", "write", str(ws / "planted.txt")) in denials(run)


def test_a_link_inside_out_dir_followed_by_dotdot_builds(cargo: Cargo, ws: Path) -> None:
    cases = ["mkdir $O/sub", "write $O/sub/own.txt", "symlink sub $O/l", "read $O/l/own.txt",
             "read $O/l/../sub/own.txt", "canonicalize $O/l/own.txt", "write $O/l/../sub/../two.txt",
             "hardlink $O/sub/own.txt $O/sub/../three.txt", "rename $O/three.txt $O/sub/../four.txt",
             "mkdir $O/x/../y/z/", "remove $O/l/../four.txt", "read $O/./sub//../two.txt"]
    run = build(cargo, ws, policy("VERSION"), cases)
    assert run.ok, run.proc.stderr[-3000:]
    got = outcomes(run)
    (out,) = out_dirs(ws)
    assert {got[(c.split()[0], c.split()[1])] for c in cases if not c.startswith(("read", "canonicalize"))} == {"ok"}
    for case in ("$O/l/own.txt", "$O/l/../sub/own.txt", "$O/./sub//../two.txt"):
        assert got[("read", case)] == "ok written by dotdot", case
    assert got[("canonicalize", "$O/l/own.txt")] == f"ok {out / 'sub' / 'own.txt'}"
    assert (out / "two.txt").is_file() and (out / "y" / "z").is_dir() and not (out / "four.txt").exists()
    assert not denials(run)


@pytest.mark.skipif(landlock.abi_version() < 1, reason="granted programs need Landlock")
def test_a_programs_relative_working_directory_follows_the_scripts_own(cargo: Cargo, ws: Path) -> None:
    """Natively a relative `current_dir` is relative to the parent's current directory, and its `..` means
    what it does in the parent's paths; the host used to join it to the package directory."""
    grant = policy("VERSION", "data-a") + 'process-spawn = { action = "permit", programs = ["pwd"] }\n'
    cases = ["spawn-pwd ../data-a", "spawn-pwd $M/../data-a/.", "chdir ..", "spawn-pwd member/../data-a",
             "spawn-pwd data-b"]
    run = build(cargo, ws, grant, cases)
    got = outcomes(run)
    for path in ("../data-a", "$M/../data-a/.", "member/../data-a"):
        assert got[("spawn-pwd", path)] == f"ok exit status: 0 {ws / 'data-a'}", path
    assert got[("spawn-pwd", "data-b")].startswith("err ")  # <ws>/data-b: not granted
    assert not run.ok


def test_a_target_dir_named_with_dotdot_still_holds_out_dir(cargo: Cargo, ws: Path) -> None:
    """Cargo passes `CARGO_TARGET_DIR=<ws>/member/../target` on in OUT_DIR, `..` and all; the guest looks every
    path up by its normal form, so the runner preopens OUT_DIR by that form too."""
    (ws / "cratecage.toml").write_text(policy("VERSION"))
    write_test_env(ws / "member", {"CASES": "write $O/x.txt\nread $O/x.txt\n"})
    run = cargo(ws, "build", wrapped=True, target_dir=ws / "member" / ".." / "target", check=False)
    assert run.ok, run.proc.stderr[-3000:]
    got = outcomes(run)
    assert got[("write", "$O/x.txt")] == "ok" and got[("read", "$O/x.txt")] == "ok written by dotdot"
    (out,) = out_dirs(ws)
    assert (out / "x.txt").read_text() == "written by dotdot\n"
    assert not denials(run)
