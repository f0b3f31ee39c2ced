"""shim.cargo.workspace: which cargo started the build (by executable identity or by name, the outermost), where
its command line points, and the refusal to guess when there is none. Synthetic chains for the rules, and
real process chains on this machine's /proc for the identity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shim.cargo import workspace
from shim.cargo.workspace import POLICY_ENV, ROOT_ENV, Proc, WorkspaceUnknown
from shim.errors import UsageError

CARGO_ID = (1, 100)
SHELL, RUSTC, PYTHON = (1, 7), (1, 8), (1, 9)


def proc(*argv: str, cwd: str | None = "/somewhere", exe: tuple[int, int] | None = SHELL) -> Proc:
    return Proc(tuple(argv), cwd, exe)


@pytest.mark.parametrize("chain, cwd", [
    # innermost first, as /proc gives it: the wrapper, then cargo, then the user's shell
    ([proc("python", cwd="/reg/dep", exe=PYTHON), proc("cargo", "build", cwd="/ws", exe=CARGO_ID),
      proc("bash")], "/ws"),
    # cargo under another name: a distribution's cargo-1.95 link, a copy, `exec -a`, an empty argv
    ([proc("python", cwd="/reg/dep"), proc("/usr/bin/cargo-1.95", "build", cwd="/ws", exe=CARGO_ID)], "/ws"),
    ([proc("python", cwd="/reg/dep"), proc("xbuild", cwd="/ws", exe=CARGO_ID)], "/ws"),
    ([proc("python", cwd="/reg/dep"), proc(cwd="/ws", exe=CARGO_ID)], "/ws"),
    # named cargo, running another binary (CARGO unset or elsewhere): still cargo
    ([proc("python", cwd="/reg/dep"), proc("/opt/bin/cargo", cwd="/ws", exe=(2, 2))], "/ws"),
    # a cargo a build script started, inside the user's: the outermost wins, by either rule
    ([proc("python", cwd="/reg/dep"), proc("cargo", cwd="/reg/dep", exe=CARGO_ID),
      proc("python", cwd="/reg/dep", exe=PYTHON), proc("cargo-1.95", cwd="/ws", exe=CARGO_ID)], "/ws"),
    ([proc("python", cwd="/reg/dep"), proc("x", cwd="/reg/dep", exe=CARGO_ID),
      proc("cargo", cwd="/ws", exe=(3, 3))], "/ws"),
    # rustc is not cargo, even in the dependency's directory
    ([proc("python", cwd="/reg/dep", exe=PYTHON), proc("rustc", cwd="/reg/dep", exe=RUSTC),
      proc("my-cargo", cwd="/ws", exe=CARGO_ID)], "/ws"),
])
def test_the_outermost_cargo_is_found_by_identity_or_name(chain: list[Proc], cwd: str) -> None:
    found = workspace.outermost_cargo(chain, CARGO_ID)
    assert found is not None and found.cwd == cwd


@pytest.mark.parametrize("chain, cargo_id", [
    ([proc("python", cwd="/reg/dep", exe=PYTHON), proc("cargo-1.95", cwd="/ws", exe=(5, 5)), proc("bash")],
     None),  # CARGO unset: only the name counts, and this one is not "cargo"
    ([proc("python", cwd="/reg/dep", exe=PYTHON), proc("builder", cwd="/ws", exe=(5, 5))], CARGO_ID),
    ([proc("python", cwd="/reg/dep", exe=PYTHON), proc("sh", exe=None)], CARGO_ID),
    ([proc("cargo-build", cwd="/ws"), proc("my_cargo", cwd="/ws"), proc("cargo.sh", cwd="/ws")], CARGO_ID),
    ([], CARGO_ID),
])
def test_no_cargo_among_the_ancestors_is_none(chain: list[Proc], cargo_id: tuple[int, int] | None) -> None:
    assert workspace.outermost_cargo(chain, cargo_id) is None


@pytest.mark.parametrize("argv, start", [
    (["cargo", "build"], "/ws/sub"),
    (["cargo", "build", "--manifest-path", "../other/Cargo.toml"], "/ws/other/Cargo.toml"),
    (["cargo", "build", "--manifest-path=/abs/p/Cargo.toml"], "/abs/p/Cargo.toml"),
    # -C: cargo has already chdir'd there, so the cwd (here /ws/sub) is where it points
    (["cargo", "-C", "../c", "build"], "/ws/sub"),
    (["cargo", "-C/abs/c", "build"], "/ws/sub"),
    (["cargo", "-C=d", "build"], "/ws/sub"),
    (["cargo", "+nightly", "-Zunstable-options", "-C", "d", "build", "--manifest-path", "e/Cargo.toml"],
     "/ws/sub/e/Cargo.toml"),
    (["cargo", "--config", "x=1", "-C", "d", "build"], "/ws/sub"),
    (["cargo", "-C", "build", "check"], "/ws/sub"),  # -C's value is no subcommand
    (["cargo", "--color", "never", "build"], "/ws/sub"),
    # after the subcommand, -C is not cargo's (and after `--` nothing is)
    (["cargo", "rustc", "-C", "x", "--", "-C", "opt-level=3"], "/ws/sub"),
    (["cargo", "run", "--", "--manifest-path", "/evil/Cargo.toml"], "/ws/sub"),
])
def test_the_start_is_cargo_s_cwd_joined_with_manifest_path_never_dash_c_again(argv: list[str], start: str) -> None:
    assert workspace.start_of(proc(*argv, cwd="/ws/sub")) == Path(start)


def test_an_unreadable_cwd_has_no_start() -> None:
    assert workspace.start_of(proc("cargo", "build", cwd=None)) is None


def chain_of(monkeypatch: pytest.MonkeyPatch, chain: list[Proc]) -> None:
    monkeypatch.setattr(workspace, "ancestors", lambda pid: chain)


def test_without_a_cargo_ancestor_the_build_stops_naming_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    chain_of(monkeypatch, [proc("python", cwd="/reg/dep"), proc("make")])
    with pytest.raises(WorkspaceUnknown) as err:
        workspace.find_workspace_root({"CARGO_PKG_NAME": "evil-sys"})
    text = err.value.render()
    assert text.startswith("cratecage: ") and "`evil-sys`" in text
    assert ROOT_ENV in text and POLICY_ENV in text and "absolute path" in text
    assert err.value.exit_code == 2


def test_an_unreadable_cargo_cwd_stops_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    chain_of(monkeypatch, [proc("python", cwd="/reg/dep"), proc("cargo", cwd=None)])
    with pytest.raises(WorkspaceUnknown, match="unreadable"):
        workspace.find_workspace_root({})


def test_the_root_override_must_be_absolute_and_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chain_of(monkeypatch, [])
    assert workspace.find_workspace_root({ROOT_ENV: str(tmp_path)}) == tmp_path
    with pytest.raises(UsageError, match=ROOT_ENV):
        workspace.find_workspace_root({ROOT_ENV: "."})


def test_an_absolute_policy_needs_no_root(monkeypatch: pytest.MonkeyPatch) -> None:
    chain_of(monkeypatch, [])
    assert workspace.workspace_root_if_known({POLICY_ENV: "/etc/cc/policy.toml"}) is None
    for relative in ({POLICY_ENV: "cc.toml"}, {}):
        with pytest.raises(WorkspaceUnknown):
            workspace.workspace_root_if_known(relative)


def test_a_child_gets_the_build_s_root_and_policy_not_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    chain_of(monkeypatch, [])
    host = {ROOT_ENV: "/ws", POLICY_ENV: "policies/cc.toml"}
    assert workspace.child_env(host) == {ROOT_ENV: "/ws", POLICY_ENV: "/ws/policies/cc.toml"}
    assert workspace.child_env({POLICY_ENV: "/p.toml"}) == {POLICY_ENV: "/p.toml"}
    assert workspace.child_env({}) == {}


def test_the_host_spawn_environment_pins_them_over_the_guest_s(monkeypatch: pytest.MonkeyPatch) -> None:
    from shim.host import abi
    from shim.host import spawn as host_spawn
    from shim.host.context import RunContext

    chain_of(monkeypatch, [])
    ctx = RunContext(crate="c", version="1", package_dir="/reg/c", out_dir="/t/out", tmp_dir="/t/tmp",
                     env={"OUT_DIR": "/t/out"}, host_env={ROOT_ENV: "/ws", "PATH": "/usr/bin"}, rustc="rustc",
                     sysroot="/")
    req = abi.SpawnRequest()
    req.env_ops = [("set", ROOT_ENV, "/reg/c"), ("set", POLICY_ENV, "/reg/c/evil.toml"),
                   ("set", "CRATECAGE_LIMIT_TIME", "99999")]
    env = host_spawn.child_env(ctx, req)
    assert env[ROOT_ENV] == "/ws" and POLICY_ENV not in env and "CRATECAGE_LIMIT_TIME" not in env


# -- real process chains -----------------------------------------------------------------------------------

PROBE = ("import sys; sys.path.insert(0, sys.argv[1]); from shim.cargo import workspace\n"
         "try: print(workspace.find_workspace_root())\n"
         "except workspace.WorkspaceUnknown as e: print('unknown')\n")


def real_root(launcher: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run PROBE as a grandchild of `launcher` (argv of a program that runs a shell command), so that
    program is the probe's ancestor as cargo would be."""
    repo = str(Path(__file__).resolve().parents[2])
    inner = f"{sys.executable} -c \"$0\" {repo}; true"  # `; true`: the shell must not exec the probe
    done = subprocess.run([*launcher, inner, PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture()
def project(tmp_path: Path) -> dict[str, Path]:
    ws = tmp_path / "ws"
    (ws / "member" / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["member"]\n')
    (ws / "member" / "Cargo.toml").write_text('[package]\nname = "member"\nversion = "0.1.0"\n')
    return {"ws": ws, "member": ws / "member", "bin": tmp_path / "bin"}



def test_a_renamed_program_is_cargo_when_it_is_the_binary_cargo_names(project: dict[str, Path]) -> None:
    sh = os.path.realpath(shutil.which("sh") or "/bin/sh")
    project["bin"].mkdir()
    real = project["bin"] / "real"  # a binary of its own, so no other ancestor (make's sh) is the same file
    shutil.copy2(sh, real)
    link = project["bin"] / "cargo-1.95"
    link.symlink_to(real)
    copy = project["bin"] / "builder"
    shutil.copy2(sh, copy)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    # the probe's parent shell, started as cargo-1.95 (a link to $CARGO) or as a copy that $CARGO names
    assert real_root([str(link), "-c"], project["member"], {**env, "CARGO": str(real)}) == str(project["ws"])
    assert real_root([str(copy), "-c"], project["member"], {**env, "CARGO": str(copy)}) == str(project["ws"])
    # the same programs when $CARGO names another binary are not cargo, and nothing else is guessed
    assert real_root([str(copy), "-c"], project["member"], {**env, "CARGO": str(real)}) == "unknown"
    assert real_root([str(link), "-c"], project["member"], env) == "unknown"


def test_the_psutil_chain_agrees_with_proc() -> None:
    from_proc = workspace._proc_ancestors(os.getpid())
    assert from_proc is not None
    assert workspace._psutil_ancestors(os.getpid())[:3] == from_proc[:3]


def test_an_absolute_policy_is_read_without_a_workspace_and_a_relative_one_is_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from shim.sandbox import enforce

    chain_of(monkeypatch, [proc("python", cwd=str(tmp_path))])
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "dep"\nversion = "1.0.0"\n'
                                         '[package.metadata.permissions.build.dep]\nsandbox = "native"\n')
    policy = tmp_path / "p.toml"
    policy.write_text('[permissions.build.dep]\nenv-access = ["A"]\n')
    grant, found = enforce.grant("build", "dep", "1.0.0", {POLICY_ENV: str(policy)})
    assert found is not None and grant is not None and grant.env == ("A",) and not grant.native
    with pytest.raises(WorkspaceUnknown):
        enforce.grant("build", "dep", "1.0.0", {POLICY_ENV: "p.toml"})
    with pytest.raises(WorkspaceUnknown):
        enforce.grant("build", "dep", "1.0.0", {})


@pytest.mark.parametrize("root_manifest, is_root", [
    ('[workspace]\nmembers = ["m"]\n', True),
    ('[workspace] # the root\nmembers = ["m"]\n', True),
    ('[ workspace ]\nmembers = ["m"]\n', True),
    ('workspace.members = ["m"]\n', True),
    ('workspace = { members = ["m"] }\n', True),
    ('[workspace.package]\nversion = "1.0.0"\n', True),
    ('[package]\nname = "r"\nversion = "0.1.0"\n# [workspace] only in a comment\n', False),
    ('[package]\nname = "r"\nversion = "0.1.0"\ndescription = """\n[workspace]\n"""\n', False),
])
def test_the_workspace_root_is_the_manifest_that_defines_a_workspace_in_any_spelling(
        tmp_path: Path, root_manifest: str, is_root: bool) -> None:
    """Started in a member, the policy must come from the root: a missed spelling would make the member its
    own root and its own policy source (a quoted or commented `[workspace]` is none)."""
    (tmp_path / "Cargo.toml").write_text(root_manifest)
    member = tmp_path / "m"
    (member / "src").mkdir(parents=True)
    (member / "Cargo.toml").write_text('[package]\nname = "m"\nversion = "0.1.0"\n')
    assert workspace.workspace_root_from(member / "src") == (tmp_path if is_root else member)
