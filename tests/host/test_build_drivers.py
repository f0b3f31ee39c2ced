"""Granted programs that run their own tools, and optional probes that fail natively too (issue 11, classes 5
and 7), through real cargo and the real wrapper.

On a copy of fixtures/build-drivers: `sh configure` (sed, grep, tr, uname and the C compiler) with `sh`
granted, a configure that compiles and runs `./conftest` in OUT_DIR (tikv-jemalloc-sys's real one, ~2 min, is built
with `sh`, `make`, `cc` and `ar` granted by `make bench --only compat`),
`git rev-parse` and `git submodule` (one of git's helper programs) in a repository with `git`
granted, a python3 shim script granted by its path, and wasm-bindgen-shared from crates.io, whose script runs
`git rev-parse`, with an empty policy: the curated deny makes that refusal expected. A workspace member's own
git is not denied by that default: it gets the normal refusal and its entry, or the owner's deny.

On a copy of fixtures/path-attacks (its cases: see tests/sandbox/test_path_attacks.py): what a granted `sh` may not
do, each with its twin: what it runs of this run's output (OUT_DIR, the temp dir) reads, connects and
outlives no more than sh; the script itself never spawns that output, a compiler never runs it, and no
driver runs another crate's; run a program outside the system's tool directories until `may-run` names it,
read a file outside the grants, connect anywhere without a route; and nothing the tools it starts do instead (python3, perl, git, xargs, env, tee, bash, strace)
reads, writes, traces or outlives more, nor does `git config --global` reach the user's ~/.gitconfig.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import psutil
import pytest

from shim.cargo import layout
from shim.confine import landlock

from conftest import FIXTURES, Cargo, CargoRun, own_lines
from test_path_attacks import PEER
from test_path_attacks import build as build_cases
from test_path_attacks import grants, new_arena, outcomes

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(landlock.abi_version() < 1, reason="granted programs need Landlock")]
PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("build-drivers").resolve() / "ws"
    shutil.copytree(FIXTURES / "build-drivers", ws, symlinks=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    member = ws / "git-demo"
    subprocess.run([*git, "init", "-q", "."], cwd=member, check=True)
    subprocess.run([*git, "add", "."], cwd=member, check=True)
    subprocess.run([*git, "commit", "-qm", "the commit the build embeds"], cwd=member, check=True)
    return ws


def build(cargo: Cargo, ws: Path, policy: str | None, package: str) -> CargoRun:
    """`cargo build -p package` under `policy` (None: no policy file at all)."""
    path = ws / "cratecage.toml"
    if policy is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(policy)
    return cargo(ws, "build", "--locked", "-p", package, wrapped=True, target_dir=ws / "target", check=False)


def audit_events(ws: Path, crate: str) -> list[dict]:
    log = ws / "target" / layout.STATE_DIR / "audit.jsonl"
    return [e for e in map(json.loads, log.read_text().splitlines()) if e.get("crate") == crate]


def warnings(run: CargoRun, package: str) -> list[str]:
    prefix = f"warning: {package}@"
    return [line.split(": ", 2)[2] for line in run.proc.stderr.splitlines() if line.startswith(prefix)]


# -- drivers that build ------------------------------------------------------------------------------------

def test_sh_configure_runs_sed_grep_and_the_c_compiler(selected_cargo: Cargo, ws: Path) -> None:
    run = build(selected_cargo, ws, '[permissions.build.configure-demo]\nprocess-spawn = ["sh"]\n', "configure-demo")
    assert run.ok, run.proc.stderr[-3000:]
    [configured] = [w for w in warnings(run, "configure-demo") if w.startswith("configured: ")]
    # the version came through grep and sed, HAVE_STDINT_H from cc, the machine from uname and tr
    assert '#define PACKAGE_VERSION "1.2.3"; #define HAVE_STDINT_H 1; #define BUILD_MACHINE_' in configured
    assert not own_lines(run.proc.stderr)


def test_a_mini_autoconf_configure_runs_the_conftest_it_compiled(selected_cargo: Cargo, ws: Path) -> None:
    run = build(selected_cargo, ws, '[permissions.build.autoconf-run]\nprocess-spawn = ["sh", "cc"]\n', "autoconf-run")
    assert run.ok, run.proc.stderr[-3000:]
    assert f"configured: #define SIZEOF_LONG {struct.calcsize('l')}" in warnings(run, "autoconf-run")
    assert not own_lines(run.proc.stderr)
    [ran] = [e for e in audit_events(ws, "autoconf-run") if e["event"] == "output-run"]
    assert (os.path.basename(ran["program"]), ran["started_by"].split()[0], ran["count"]) == ("conftest", "sh", 1)


def test_git_runs_its_helper_programs(selected_cargo: Cargo, ws: Path) -> None:
    run = build(selected_cargo, ws, '[permissions.build.git-demo]\nprocess-spawn = ["git"]\n', "git-demo")
    assert run.ok, run.proc.stderr[-3000:]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ws / "git-demo", capture_output=True, text=True,
                          check=True).stdout.strip()
    said = warnings(run, "git-demo")
    assert f"git-demo: HEAD {head}" in said
    # `git submodule` is git-submodule, a program in git's libexec directory
    assert any(w.startswith("git-demo: submodule status exit status: 0") for w in said), said
    assert not own_lines(run.proc.stderr)


@pytest.mark.skipif(not os.access(PYTHON, os.X_OK), reason=f"needs {PYTHON}")
def test_a_python_shim_script_granted_by_its_path_starts_the_real_python(selected_cargo: Cargo, ws: Path) -> None:
    run = build(selected_cargo, ws, '[permissions.build.python-shim]\nprocess-spawn = ["python-shim/tools/python3"]\n',
                "python-shim")
    assert run.ok, run.proc.stderr[-3000:]
    assert "python-shim: python says 42" in warnings(run, "python-shim")


# -- optional probes: expected refusals --------------------------------------------------------------------

def test_wasm_bindgen_shared_builds_with_no_policy_and_its_git_refusal_is_audited(selected_cargo: Cargo,
                                                                                   ws: Path) -> None:
    run = build(selected_cargo, ws, None, "uses-wasm-bindgen-shared")
    assert run.ok, run.proc.stderr[-3000:]
    assert not own_lines(run.proc.stderr)
    [denial] = [e for e in audit_events(ws, "wasm-bindgen-shared") if e["event"] == "denial"]
    assert (denial["capability"], denial["target"], denial["expected"], denial["fatal"]) == (
        "process-spawn", "git", True, False)


def test_a_members_own_git_gets_the_normal_refusal_and_the_owners_deny_makes_it_expected(selected_cargo: Cargo,
                                                                                        ws: Path) -> None:
    refused = build(selected_cargo, ws, "", "git-demo")
    assert not refused.ok
    lines = own_lines(refused.proc.stderr)
    assert any("process-spawn denied: git" in line for line in lines), lines
    assert 'process-spawn = { action = "permit", programs = ["git"] }' in refused.proc.stderr
    # the owner decides it is not needed: the script is told git is not there, and falls back
    denied = build(selected_cargo, ws, '[permissions.build.git-demo]\n'
                                       'process-spawn = { action = "deny", programs = ["git"] }\n', "git-demo")
    assert denied.ok, denied.proc.stderr[-3000:]
    assert "git-demo: HEAD unknown (NotFound)" in warnings(denied, "git-demo")
    assert not own_lines(denied.proc.stderr)
    events = audit_events(ws, "git-demo")
    last = [e for e in events if e["run"] == events[-1]["run"]]
    assert [(e["target"], e["expected"]) for e in last if e["event"] == "denial"] == [("git", True)]


# -- what a granted sh still may not do --------------------------------------------------------------------

@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    arena = new_arena(tmp_path_factory.mktemp("driver-attacks").resolve())
    shutil.copy2(shutil.which("true") or "/bin/true", arena / "tools" / "mytool")
    return arena


SH = 'process-spawn = { action = "permit", programs = ["sh"] }'
DATA = 'filesystem-access = { action = "permit", paths = ["data"] }'


def test_the_script_itself_never_spawns_what_it_built(selected_cargo: Cargo, arena: Path) -> None:
    true = shutil.which("true") or "/bin/true"
    make, spawn = sh(f"cp {true} $O/built && echo made"), "spawn $O/built -"
    run = build_cases(selected_cargo, arena, grants(SH), [make, spawn])
    got = outcomes(run, arena)
    assert got[make] == 'ok exit status: 0 out="made" err=""'
    assert got[spawn].startswith("err "), got  # the usual denial: only a granted build driver runs it
    assert any("process-spawn denied: " in line and line.split(": ")[3].endswith("/built")
               for line in own_lines(run.proc.stderr)), own_lines(run.proc.stderr)
    assert not run.ok


def test_what_a_granted_sh_runs_of_its_output_stays_in_its_confinement(selected_cargo: Cargo, arena: Path) -> None:
    """A driver runs what this run built (configure's ./conftest), under the driver's one confinement: copies
    of cat, python3 and sleep in OUT_DIR read no file outside the grants (beside the workspace, in the
    user's home), connect nowhere without a route and leave no process behind; each run is audited."""
    home_secret = Path(os.path.expanduser("~")) / f".cratecage-home-secret-{secrets.token_hex(4)}"
    home_secret.write_text("harmless secret in the home\n")
    token = str(90000 + secrets.randbelow(9999))
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            cases = [sh(f"cp {shutil.which('cat')} $O/mycat && $O/mycat {{ws}}/../secret.txt"),
                     sh(f"$O/mycat {home_secret}"),
                     sh(f"cp {PYTHON} $T/py && $T/py -c 'import socket;socket.create_connection((\"127.0.0.1\",{port}),5);"
                        "print(\"connected\")'"),
                     sh(f"cp {shutil.which('sleep')} $O/mysleep && setsid nohup $O/mysleep {token} >/dev/null 2>&1 & "
                        "sleep 1; echo started"),  # it has started when sh ends
                     sh("$O/mycat {ws}/data/d.txt")]
            run = build_cases(selected_cargo, arena, grants(SH, DATA), cases)
    finally:
        home_secret.unlink()
    got = outcomes(run, arena)
    assert run.ok, run.proc.stderr[-3000:]
    assert "harmless secret" not in run.proc.stderr + run.proc.stdout
    for case in cases[:3]:  # it ran (126 is a refused exec) and was refused what it tried
        assert got[case].startswith("ok exit status: ") and not got[case].startswith(("ok exit status: 0 ",
                                                                                     "ok exit status: 126 ")), got
    assert "connected" not in got[cases[2]]
    assert got[cases[3]] == 'ok exit status: 0 out="started" err=""'
    assert not [p for p in psutil.process_iter(["cmdline"]) if token in (p.info["cmdline"] or [])]
    assert got[cases[4]] == 'ok exit status: 0 out="granted data" err=""'  # the twin: it reads the grants
    runs = [e for e in audit_events(arena, "path-attacks") if e["event"] == "output-run"]
    last = [e for e in runs if e["run"] == runs[-1]["run"]]
    assert sorted((os.path.basename(e["program"]), e["started_by"].split()[0], e["count"]) for e in last) == [
        ("mycat", "sh", 3), ("mysleep", "sh", 1), ("py", "sh", 1)]


def test_a_driver_runs_nothing_another_crate_built(selected_cargo: Cargo, arena: Path) -> None:
    true = shutil.which("true") or "/bin/true"
    own = sh(f"cp {true} $O/peertool && $O/peertool && echo ran")
    first = build_cases(selected_cargo, arena, grants(SH) + grants(SH, crate=PEER), [], [own])
    assert outcomes(first, arena, PEER)[own] == 'ok exit status: 0 out="ran" err=""'  # the twin: its own
    [tool] = [p for p in (arena / "target").rglob("peertool") if p.parent.name == "out"]
    cases = [sh(f"{tool}"), sh(f"ln -s {tool} $O/link && $O/link"), sh(f"cp {tool} $O/copy")]
    run = build_cases(selected_cargo, arena, grants(SH) + grants(SH, crate=PEER), cases)
    got = outcomes(run, arena)
    keys = [c.replace(str(arena), "{ws}") for c in cases]
    assert got[keys[0]].startswith("ok exit status: 126 ") and got[keys[1]].startswith("ok exit status: 126 "), got
    assert got[keys[2]].startswith("ok exit status: 1 "), got  # not even read
    lines = own_lines(run.proc.stderr)
    assert any("process-spawn not granted: " in line and "cargo's build output" in line for line in lines), lines
    assert "may-run = [" not in run.proc.stderr  # no entry offered: nothing lets it run


def test_a_compiler_grant_compiles_but_never_runs_its_output(selected_cargo: Cargo, arena: Path) -> None:
    write, compile_ = "write $O/m.c int%20main(void){return%200;}", "spawn cc - $O/m.c -o $O/conftest"
    wrapper = "spawn cc - -x c /dev/null -c -o $O/x.o -wrapper $O/conftest"
    spawn = "spawn $O/conftest -"
    run = build_cases(selected_cargo, arena, grants('process-spawn = { action = "permit", programs = ["cc"] }'),
                      [write, compile_, wrapper, spawn])
    got = outcomes(run, arena)
    assert got[write] == "ok" and got[compile_].startswith("ok exit status: 0 "), got  # the twin: it compiles
    assert not got[wrapper].startswith("ok exit status: 0 ") and got[spawn].startswith("err "), got
    lines = own_lines(run.proc.stderr)
    assert any("only under a granted build driver" in line for line in lines), lines
    assert not run.ok


def test_may_run_lets_a_granted_sh_start_what_it_names(selected_cargo: Cargo, arena: Path) -> None:
    case = "spawn sh - -c {ws}/tools/mytool%20&&%20echo%20ran"
    refused = build_cases(selected_cargo, arena, grants(SH), [case])
    assert outcomes(refused, arena)[case].startswith("ok exit status: 126 ")
    tool = str(arena / "tools" / "mytool")
    assert f'may-run = ["{tool}"]' in refused.proc.stderr  # the entry to paste names the program
    allowed = build_cases(selected_cargo, arena, grants(
        'process-spawn = { action = "permit", programs = ["sh"], may-run = ["tools/mytool"] }'), [case])
    assert outcomes(allowed, arena)[case] == 'ok exit status: 0 out="ran" err=""'


def test_a_driver_refused_another_crates_launcher_is_offered_no_may_run(selected_cargo: Cargo, arena: Path) -> None:
    """A build-script launcher (another crate's, running with that crate's grants) found in cargo's build
    output: refused, and the paste-ready `may-run` entry is never offered for it, nor accepted (red team,
    issue 11 (d)); a tool outside the target directory keeps its entry (the twin, above)."""
    build_cases(selected_cargo, arena, grants(SH), [])
    launcher = next(p for p in sorted((arena / "target").rglob("build*script*build")) if "peer" in str(p)
                    and p.name in ("build-script-build", "build_script_build"))  # the old layout's, the new one's
    case = f"spawn sh - -c {{ws}}/{launcher.relative_to(arena)}%20&&%20echo%20ran"
    refused = build_cases(selected_cargo, arena, grants(SH), [case])
    assert outcomes(refused, arena)[case].startswith("ok exit status: 126 ")
    lines = [line for line in own_lines(refused.proc.stderr) if f"{launcher}: started by sh" in line]
    assert lines and all("cargo's build output" in line and "may-run =" not in line for line in lines), lines
    assert f'may-run = ["{launcher}"]' not in refused.proc.stderr
    granted = build_cases(selected_cargo, arena, grants(
        f'process-spawn = {{ action = "permit", programs = ["sh"], may-run = ["{launcher}"] }}'), [case])
    assert not granted.ok and "cargo's build output" in granted.proc.stderr


def test_a_granted_sh_reads_no_more_than_the_grants(selected_cargo: Cargo, arena: Path) -> None:
    cases = ["spawn sh - -c cat%20{ws}/../secret.txt", "spawn sh - -c cat%20{ws}/data/d.txt"]
    run = build_cases(selected_cargo, arena, grants(SH, DATA), cases)
    got = outcomes(run, arena)
    assert "Permission denied" in got[cases[0]], got
    assert got[cases[1]] == 'ok exit status: 0 out="granted data" err=""'
    assert "harmless secret" not in run.proc.stderr + run.proc.stdout


@pytest.mark.skipif(not os.access(PYTHON, os.X_OK), reason=f"needs {PYTHON}")
def test_what_a_granted_sh_starts_connects_only_to_granted_routes(selected_cargo: Cargo, arena: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        connect = f"spawn sh - -c {PYTHON}%20-c%20'import%20socket;socket.create_connection((\"127.0.0.1\",{port}),5);print(\"connected\")'"
        run = build_cases(selected_cargo, arena, grants(SH), [connect])
        assert "connected" not in outcomes(run, arena)[connect]
        routed = build_cases(selected_cargo, arena, grants(
            SH, f'network-access = {{ action = "permit", routes = ["127.0.0.1:{port}"] }}'), [connect])
        assert 'out="connected"' in outcomes(routed, arena)[connect]


def sh(command: str) -> str:
    """A case that runs `command` with the granted sh (spaces encoded for the fixture's word splitting)."""
    return "spawn sh - -c " + command.replace(" ", "%20")


# Every route a build driver's tools offer out of the grants (red team, issue 11): each reads the secret,
# writes beside the workspace, changes the user's git config, outlives the build or traces a process outside
# its confinement; none may. They all run under the driver's one confinement, whatever program does it.
TRAMPOLINES = [  # (the tool it needs, the case)
    (PYTHON, sh(f"{PYTHON} -c 'print(open(\"{{ws}}/../secret.txt\").read())'")),
    ("perl", sh("perl -e 'open(F,\"<\",\"{ws}/../secret.txt\")||die(\"no:$!\");print(<F>)'")),
    ("git", sh("git diff --no-index /dev/null {ws}/../secret.txt")),
    ("xargs", sh("echo {ws}/../secret.txt | xargs cat")),
    ("env", sh("env cat {ws}/../secret.txt")),
    ("tee", sh("echo x | tee {ws}/../tee.txt")),
    ("bash", sh("bash -c 'echo x > {ws}/../written.txt'")),
    ("strace", sh("strace -f -e trace=none -p 1")),
    ("cat", sh("cat /proc/1/environ")),
]


def test_a_granted_sh_and_every_tool_it_starts_stay_inside_the_grants(selected_cargo: Cargo, arena: Path) -> None:
    home_config = Path(os.path.expanduser("~/.gitconfig"))
    before = home_config.read_bytes() if home_config.exists() else None
    token = str(90000 + secrets.randbelow(9999))  # the sleeper's argument: found again only if it survived
    global_config = sh("git config --global user.name red11 && cat $HOME/.gitconfig")
    daemon = sh(f"setsid nohup sleep {token} >/dev/null 2>&1 & echo started")
    twin = sh(f"{PYTHON} -c 'print(open(\"{{ws}}/data/d.txt\").read())'")
    tools = [case for tool, case in TRAMPOLINES if shutil.which(tool)]
    run = build_cases(selected_cargo, arena, grants(SH, DATA), [*tools, global_config, daemon, twin])
    got = outcomes(run, arena)
    assert "harmless secret" not in run.proc.stderr + run.proc.stdout
    for case in tools:
        assert got[case].startswith("ok exit status: ") and not got[case].startswith("ok exit status: 0 "), (case, got)
    assert not (arena.parent / "tee.txt").exists() and not (arena.parent / "written.txt").exists()
    # git's --global is the run's temp dir (HOME), never the user's
    assert got[global_config].startswith('ok exit status: 0 out="[user]')
    assert (home_config.read_bytes() if home_config.exists() else None) == before
    assert got[daemon] == 'ok exit status: 0 out="started" err=""'
    assert not [p for p in psutil.process_iter(["cmdline"]) if token in (p.info["cmdline"] or [])]
    assert got[twin] == 'ok exit status: 0 out="granted data" err=""'
