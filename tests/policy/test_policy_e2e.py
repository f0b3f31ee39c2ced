"""Policy end to end: grants written in cratecage.toml reach a real build script through cargo and the
wrapper; what is not granted is denied with the entry that would permit it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, WRAPPER, Cargo, CargoRun, own_lines, scrubbed, write_test_env
from target_dirs import runs_a_build_script, script_runs

pytestmark = pytest.mark.integration


@pytest.fixture()
def project(tmp_path: Path) -> dict[str, Path]:
    pkg = tmp_path / "policy-demo"
    shutil.copytree(FIXTURES / "policy-demo", pkg)
    secret = tmp_path / "outside" / "config.txt"
    secret.parent.mkdir()
    secret.write_text("granted-content\n")
    write_test_env(pkg, {"POLICY_DEMO_FILE": str(secret)})
    return {"pkg": pkg, "file": secret, "target": tmp_path / "target"}


def build(cargo: Cargo, project: dict[str, Path], policy: str | None, *args: str, cwd: Path | None = None,
          env: dict[str, str] | None = None, command: str = "build") -> CargoRun:
    if policy is not None:
        (project["pkg"] / "cratecage.toml").write_text(policy)
    extra = {"POLICY_DEMO_FILE": str(project["file"]), "POLICY_DEMO_VAR": "host-value", **(env or {})}
    write_test_env(project["pkg"], {k: v for k, v in extra.items() if k != "POLICY_DEMO_VAR"})
    return cargo(cwd or project["pkg"], command, *args, wrapped=True, target_dir=project["target"],
                 extra_env=extra, check=False)


def show(cargo: Cargo, project: dict[str, Path], policy: str | None, *args: str) -> CargoRun:
    """Build with the `strict` build script and run the example that prints what it saw."""
    return build(cargo, project, policy, "--example", "show", "--features", "strict", *args,
                 command="run")


def init(cargo: Cargo, project: dict[str, Path], *cargo_args: str) -> subprocess.CompletedProcess[str]:
    env = {**scrubbed(dict(os.environ)), **cargo.env, "POLICY_DEMO_FILE": str(project["file"]),
           "POLICY_DEMO_VAR": "host-value"}
    return subprocess.run([str(WRAPPER), "init", "--", *cargo_args], cwd=project["pkg"], capture_output=True,
                          text=True, env=env, timeout=600)


def test_without_grants_the_build_fails_with_paste_ready_entries(cargo: Cargo, project: dict) -> None:
    run = build(cargo, project, None)
    err = run.proc.stderr
    assert not run.ok
    assert "policy-demo file: unreadable" in err and "policy-demo var: unset" in err
    assert "filesystem-access denied: read " + str(project["file"]) in err
    assert "[permissions.build.policy-demo]" in err
    assert f'filesystem-access = {{ action = "permit", paths = ["{project["file"]}"] }}' in err
    assert "env-access not granted: POLICY_DEMO_VAR" in err  # reported; a lookup alone fails nothing
    assert 'env-access = { action = "permit", vars = ["POLICY_DEMO_VAR"] }' in err
    assert "host-value" not in err and "granted-content" not in err


def test_grants_let_the_script_read_the_file_and_the_variable(cargo: Cargo, project: dict) -> None:
    policy = (f'[permissions.build.policy_demo]\n'
              f'filesystem-access = {{ action = "permit", paths = ["{project["file"]}"] }}\n'
              f'env-access = {{ action = "permit", vars = ["POLICY_DEMO_*"] }}\n')
    run = build(cargo, project, policy)
    assert run.ok, run.proc.stderr[-3000:]
    assert "policy-demo file: granted-content" in run.proc.stderr
    assert "policy-demo var: host-value" in run.proc.stderr


def test_a_version_requirement_that_does_not_match_grants_nothing(cargo: Cargo, project: dict) -> None:
    policy = ('[permissions.build.policy-demo]\nversion = "^0.4"\n'
              'env-access = { action = "permit", vars = ["POLICY_DEMO_VAR"] }\n')
    run = build(cargo, project, policy)
    assert "policy-demo var: unset" in run.proc.stderr
    policy = policy.replace("^0.4", ">=0.3, <0.4")
    assert "policy-demo var: host-value" in build(cargo, project, policy).proc.stderr


def test_deny_wins_over_permit(cargo: Cargo, project: dict) -> None:
    # Two tables for one crate must be an array of tables; the deny entry is merged with the permit.
    policy = ('[[permissions.build.policy-demo]]\n'
              'env-access = { action = "permit", vars = ["POLICY_DEMO_*"] }\n'
              '[[permissions.build.policy-demo]]\n'
              'env-access = { action = "deny", vars = ["POLICY_DEMO_VAR"] }\n')
    run = build(cargo, project, policy)
    assert "policy-demo var: unset" in run.proc.stderr


@pytest.mark.parametrize("feature, shown", [
    ("link-arg", "directives denied: cargo:rustc-link-arg=-Wl,--no-as-needed"),
    ("ld-preload", "directives denied: cargo:rustc-env=LD_PRELOAD=/tmp/not-really.so"),
])
def test_dangerous_directives_are_dropped_and_reported(cargo: Cargo, project: dict, feature: str,
                                                       shown: str) -> None:
    base = (f'[permissions.build.policy-demo]\n'
            f'filesystem-access = {{ action = "permit", paths = ["{project["file"]}"] }}\n'
            f'env-access = {{ action = "permit", vars = ["POLICY_DEMO_VAR"] }}\n')
    run = build(cargo, project, base, "--features", feature)
    err = run.proc.stderr
    assert not run.ok and shown in err
    if feature == "ld-preload":  # the indented and \r variants are the same directive to cargo: denied too
        assert "LD_PRELOAD=/tmp/indented.so" in err and "LD_AUDIT=/tmp/cr.so" in err
        assert 'directives = { action = "permit", list = ["rustc-env=LD_PRELOAD"] }' in err
    for output, _ in script_runs(project["target"], "policy-demo"):  # cargo keeps none on failure
        assert "LD_PRELOAD" not in output.read_text() and "rustc-link-arg" not in output.read_text()


def test_a_directive_grant_lets_it_through(cargo: Cargo, project: dict) -> None:
    policy = (f'[permissions.build.policy-demo]\n'
              f'filesystem-access = {{ action = "permit", paths = ["{project["file"]}"] }}\n'
              f'env-access = {{ action = "permit", vars = ["POLICY_DEMO_VAR"] }}\n'
              f'directives = ["rustc-link-arg=-Wl,--no-as-needed"]\n')
    run = build(cargo, project, policy, "--features", "link-arg")
    assert run.ok, run.proc.stderr[-3000:]


def test_the_workspace_root_is_found_from_a_subdirectory_and_with_manifest_path(cargo: Cargo, project: dict,
                                                                                tmp_path: Path) -> None:
    policy = '[permissions.build.policy-demo]\nenv-access = { action = "permit", vars = ["POLICY_DEMO_VAR"] }\n'
    run = build(cargo, project, policy, cwd=project["pkg"] / "src")
    assert "policy-demo var: host-value" in run.proc.stderr
    shutil.rmtree(project["target"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = build(cargo, project, None, "--manifest-path", str(project["pkg"] / "Cargo.toml"), cwd=elsewhere)
    assert "policy-demo var: host-value" in run.proc.stderr


def test_a_malformed_policy_stops_the_build_before_any_script_runs(cargo: Cargo, project: dict) -> None:
    run = build(cargo, project, '[permissions.build.policy-demo]\nnetwork-access = { action = "permit", '
                                'routes = ["127.0.0.1"] }\n')
    err = run.proc.stderr
    assert not run.ok
    assert f"cratecage: {project['pkg'] / 'cratecage.toml'}:2: " in err and "routes" in err and "port" in err
    assert "policy-demo file:" not in err  # the build script never ran
    assert "Traceback" not in err


def test_policy_edits_rerun_the_build_script(cargo: Cargo, project: dict) -> None:
    policy = '[permissions.build.policy-demo]\nenv-access = { action = "permit", vars = ["POLICY_DEMO_VAR"] }\n'
    assert "policy-demo var: host-value" in build(cargo, project, policy).proc.stderr
    revoked = build(cargo, project, '[permissions.build.other]\nenv-access = ["X"]\n')
    assert "policy-demo var: unset" in revoked.proc.stderr and not revoked.ok


def test_policy_edits_rerun_a_script_without_rerun_lines_of_a_package_outside_the_workspace(
        cargo: Cargo, tmp_path: Path) -> None:
    """Like a registry crate: a path dependency outside the workspace root whose build script names no
    inputs. cratecage lists its package directory and the policy file for it (shim.build.run
    rerun_on_policy_edits): a policy edit reruns it, an edit-free build leaves it fresh."""
    far = tmp_path / "far" / "farpkg"
    (far / "src").mkdir(parents=True)
    (far / "Cargo.toml").write_text('[package]\nname = "farpkg"\nversion = "1.0.0"\nedition = "2021"\n')
    (far / "build.rs").write_text('fn main() { println!("cargo:rustc-cfg=farpkg_built"); }\n')
    (far / "src" / "lib.rs").write_text("#[cfg(farpkg_built)]\npub const BUILT: bool = true;\n")
    app = tmp_path / "ws" / "app"
    (app / "src").mkdir(parents=True)
    (app / "Cargo.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n'
                                    f'[dependencies]\nfarpkg = {{ path = "{far}" }}\n[workspace]\n')
    (app / "src" / "lib.rs").write_text("pub const BUILT: bool = farpkg::BUILT;\n")
    policy = app / "cratecage.toml"
    policy.write_text('[permissions.build.other]\nenv-access = ["A"]\n')

    def farpkg_runs() -> int:
        run = cargo(app, "build", "-v", wrapped=True, target_dir=tmp_path / "target")
        return sum(1 for line in run.proc.stderr.splitlines()
                   if runs_a_build_script(line) and ("/farpkg-" in line or "/farpkg/" in line))

    assert farpkg_runs() == 1
    assert farpkg_runs() == 0  # fresh: the package directory and the policy file are unchanged
    time.sleep(1.1)  # mtime granularity of some filesystems
    policy.write_text('[permissions.build.other]\nenv-access = ["B"]\n')
    assert farpkg_runs() == 1
    assert farpkg_runs() == 0


def test_policy_check_command(project: dict) -> None:
    (project["pkg"] / "cratecage.toml").write_text('[permissions.build.policy-demo]\nenv-access = ["A"]\n')
    env = scrubbed(dict(os.environ))
    ok = subprocess.run([str(WRAPPER), "policy", "check"], cwd=project["pkg"], capture_output=True, text=True,
                        env=env)
    assert ok.returncode == 0, ok.stderr
    assert "cratecage.toml" in ok.stdout and "1 entry" in ok.stdout
    (project["pkg"] / "cratecage.toml").write_text('[permissions.build.policy-demo]\nenv-acess = ["A"]\n')
    bad = subprocess.run([str(WRAPPER), "policy", "check"], cwd=project["pkg"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("cratecage: ") and ":2: " in bad.stderr


def test_the_audit_trail_records_grants_and_denials(cargo: Cargo, project: dict) -> None:
    policy = '[permissions.build.policy-demo]\nenv-access = { action = "permit", vars = ["POLICY_DEMO_VAR"] }\n'
    run = build(cargo, project, policy, "--features", "link-arg", env={"CRATECAGE_LOG": "json"})
    assert '"event": "denial"' in run.proc.stderr or '"event":"denial"' in run.proc.stderr.replace(" ", "")
    audit = subprocess.run([str(WRAPPER), "audit", str(project["target"])], capture_output=True, text=True,
                           env=scrubbed(dict(os.environ)))
    assert audit.returncode == 0, audit.stderr
    text = audit.stdout
    assert "policy-demo" in text and "0.3.1" in text
    assert "granted  env-access.vars: POLICY_DEMO_VAR" in text and "cratecage.toml:1" in text
    assert "denied   directives: cargo:rustc-link-arg=-Wl,--no-as-needed" in text


def test_sandbox_native_is_the_named_escape_hatch_and_is_reported(cargo: Cargo, project: dict) -> None:
    run = build(cargo, project, '[permissions.build.policy-demo]\nsandbox = "native"\n')
    assert run.ok, run.proc.stderr[-3000:]
    err = run.proc.stderr
    assert "policy-demo file: granted-content" in err and "policy-demo var: host-value" in err  # native: all
    assert 'runs natively, unsandboxed (sandbox = "native" in' in err
    again = build(cargo, project, None, "-v", env={"POLICY_DEMO_VAR": "changed"})  # a rerun reports it again
    assert 'runs natively, unsandboxed' in again.proc.stderr
    assert not run.replays()
    audit = subprocess.run([str(WRAPPER), "audit", str(project["target"])], capture_output=True, text=True,
                           env=scrubbed(dict(os.environ)))
    assert audit.returncode == 0, audit.stderr
    assert any(line.split()[:3] == ["policy-demo", "0.3.1", "native"] for line in audit.stdout.splitlines())
    assert audit.stdout.splitlines()[-1].startswith("ran natively: 1 build script, 0 proc macro crates")


def test_init_proposes_a_policy_under_which_an_enforcing_build_passes(cargo: Cargo, project: dict) -> None:
    proposed = init(cargo, project, "--features", "link-arg")
    assert proposed.returncode == 0, proposed.stderr[-3000:]
    proposal = (project["pkg"] / "cratecage.toml").read_text()
    assert "[permissions.build.policy-demo]  # policy-demo 0.3.1" in proposal
    assert str(project["file"]) in proposal and "POLICY_DEMO_VAR" in proposal
    assert "rustc-link-arg=-Wl,--no-as-needed" in proposal
    run = build(cargo, project, None, "--features", "link-arg")  # enforce mode, the proposal as the policy
    assert run.ok, run.proc.stderr[-3000:]
    assert "policy-demo file: granted-content" in run.proc.stderr
    audit = subprocess.run([str(WRAPPER), "audit", str(project["target"])], capture_output=True, text=True,
                           env=scrubbed(dict(os.environ)))
    assert "policy-demo" in audit.stdout and " ok " in audit.stdout


def test_warn_mode_builds_and_reports_what_was_not_granted(cargo: Cargo, project: dict) -> None:
    run = build(cargo, project, '[permissions]\nmode = "warn"\n', "--features", "link-arg")
    assert run.ok, run.proc.stderr[-3000:]
    err = run.proc.stderr
    assert "filesystem-access not granted (warn mode: permitted): read " + str(project["file"]) in err
    assert "directives not granted (warn mode: permitted): cargo:rustc-link-arg=-Wl,--no-as-needed" in err
    [(stdout, _)] = script_runs(project["target"], "policy-demo")
    output = stdout.read_text()
    assert "cargo:rustc-link-arg=-Wl,--no-as-needed" in output  # warn mode passes the directive on


def test_a_script_that_unwraps_its_read_and_variable_fails_without_grants(cargo: Cargo, project: dict) -> None:
    run = show(cargo, project, None)
    assert not run.ok
    assert "filesystem-access denied: read " + str(project["file"]) in run.proc.stderr
    assert "granted-content" not in run.proc.stdout


def test_warn_mode_lets_the_script_read_any_file_and_see_the_environment(cargo: Cargo, project: dict) -> None:
    run = show(cargo, project, '[permissions]\nmode = "warn"\n')
    assert run.ok, run.proc.stderr[-3000:]
    assert run.proc.stdout.strip() == "granted-content|host-value"  # the values reached the program
    err = run.proc.stderr
    assert "filesystem-access not granted (warn mode: permitted): read " + str(project["file"]) in err
    assert f'filesystem-access = {{ action = "permit", paths = ["{project["file"]}"] }}' in err
    assert "env-access not granted (warn mode: permitted): POLICY_DEMO_VAR" in err
    assert "CARGO_PKG_NAME" not in err and "not granted (warn mode: permitted): CARGO" not in err  # defaults


def test_init_learns_what_warn_mode_permitted(cargo: Cargo, project: dict) -> None:
    proposed = init(cargo, project, "--features", "strict")
    assert proposed.returncode == 0, proposed.stderr[-3000:]
    proposal = (project["pkg"] / "cratecage.toml").read_text()
    assert str(project["file"]) in proposal and '"POLICY_DEMO_VAR"' in proposal
    run = show(cargo, project, None)  # enforce mode, fresh target directory, the proposal as the policy
    assert run.ok, run.proc.stderr[-3000:]
    assert run.proc.stdout.strip() == "granted-content|host-value"
    assert not any("not granted" in line or "denied" in line for line in own_lines(run.proc.stderr))


def test_warn_mode_still_refuses_writes_outside_out_dir(cargo: Cargo, project: dict, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    run = build(cargo, project, '[permissions]\nmode = "warn"\n', "--features", "write-outside",
                env={"POLICY_DEMO_CANARY": str(canary)})
    assert run.ok, run.proc.stderr[-3000:]  # warn mode fails nothing...
    assert not canary.exists()  # ...but the write never happened
    err = run.proc.stderr
    assert "policy-demo canary: refused" in err
    assert f"filesystem-access denied: write {canary}" in err  # not "permitted": warn mode does not widen writes
