"""shim.host.spawn on real processes: which program a request runs, with what environment, where, confined,
for how long, and that nothing outlives the run. (tests/host/test_spawn.py drives the same code from real build
scripts through cargo.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from shim.confine import landlock
from shim.host import abi
from shim.host import spawn as host_spawn
from shim.host.context import RunContext
from shim.host.process import Sinks
from shim.policy.load import load_text

CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")


def make_ctx(tmp_path: Path, policy: str, *, mode: str = "", **host_env: str) -> RunContext:
    dirs = {name: tmp_path / name for name in ("pkg", "out", "tmp")}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    (dirs["pkg"] / "data.txt").write_text("package data\n")
    text = (f'[permissions]\nmode = "{mode}"\n' if mode else "") + policy
    grant = load_text(text, file="test.toml", base=tmp_path, where="top-level").resolve("build", "demo", "1.0.0")
    env = {"PATH": "/usr/bin:/bin", "SECRET_TOKEN": "hunter2", **host_env}
    return RunContext(crate="demo", version="1.0.0", package_dir=str(dirs["pkg"]), out_dir=str(dirs["out"]),
                      tmp_dir=str(dirs["tmp"]), env={"OUT_DIR": str(dirs["out"]), "TMPDIR": str(dirs["tmp"])},
                      host_env=env, rustc="rustc", sysroot="/nonexistent", grant=grant,
                      deadline=time.monotonic() + 60)


def grant_of(*programs: str) -> str:
    items = ", ".join(f'"{p}"' for p in programs)
    return f'[permissions.build.demo]\nprocess-spawn = {{ action = "permit", programs = [{items}] }}\n'


def request(program: str, *args: str, **kw: object) -> abi.SpawnRequest:
    return abi.SpawnRequest(program=program, args=list(args), **kw)  # type: ignore[arg-type]


# -- which program ----------------------------------------------------------------------------------------

def test_a_granted_name_resolves_on_the_hosts_path(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    assert host_spawn.resolve(ctx, "cat") == CAT
    assert host_spawn.resolve(ctx, "/bin/cat") == CAT  # what the granted name resolves to


def test_names_not_granted_are_refused_without_looking(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    for program in ("sh", "/bin/sh", "curl", "catt", "../cat", "bin/cat"):
        with pytest.raises(host_spawn.SpawnRefused):
            host_spawn.resolve(ctx, program)
    with pytest.raises(host_spawn.SpawnRefused, match="does not grant"):
        host_spawn.resolve(make_ctx(tmp_path, ""), "cat")


def test_the_guests_path_never_picks_the_program(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    fake = Path(ctx.out_dir) / "cat"
    shutil.copy2(CAT, fake)
    ctx.env["PATH"] = ctx.out_dir  # what the guest sees; the host's PATH is used
    assert host_spawn.resolve(ctx, "cat") == CAT


def test_a_binary_the_script_can_write_is_refused_even_when_granted(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of(str(tmp_path / "out" / "tool"), "tool"),
                   PATH=f"{tmp_path / 'out'}:/usr/bin")
    shutil.copy2(CAT, tmp_path / "out" / "tool")
    for program in (str(tmp_path / "out" / "tool"), "tool"):
        with pytest.raises(host_spawn.SpawnRefused, match="can write"):
            host_spawn.resolve(ctx, program)


def test_a_program_path_with_dotdot_runs_what_it_names_lexically(tmp_path: Path) -> None:
    """The guest resolves `..` lexically (facade paths.rs); the policy is checked on that meaning, so the
    host runs that meaning too: a link the script planted before a `..` cannot swap in another binary."""
    tools, elsewhere = tmp_path / "tools", tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    tools.mkdir()
    shutil.copy2(CAT, tools / "tool")
    shutil.copy2(CAT, elsewhere / "tool")  # a host binary nobody granted
    ctx = make_ctx(tmp_path, grant_of(str(tools / "tool"), str(tmp_path / "out" / "tool")))
    for spelling in (f"{tools}/./x/../tool", f"/{tools}//tool", f"{tmp_path}/out/../tools/tool"):
        assert host_spawn.resolve(ctx, spelling) == str(tools / "tool")
    os.symlink(elsewhere / "sub", tmp_path / "out" / "l")  # planted in OUT_DIR, which it may write
    with pytest.raises(host_spawn.SpawnRefused, match="can write"):
        host_spawn.resolve(ctx, f"{tmp_path}/out/l/../tool")  # granted as OUT_DIR/tool; never elsewhere/tool


def test_a_link_the_script_can_write_never_stands_in_for_a_granted_program(tmp_path: Path) -> None:
    """A granted name or path may lead to the binary only through entries the guest cannot make or swap: a
    link it planted in OUT_DIR, in a writable grant, or in a writable directory on the host's PATH would
    turn the grant into any host binary (here `sh` for a granted `cat`)."""
    sh = shutil.which("sh") or "/bin/sh"
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    tools.mkdir()
    bin_dir.mkdir()
    ctx = make_ctx(tmp_path, grant_of("cat", str(tools / "gen"), "gen")
                   + f'filesystem-access = {{ action = "permit", writable = ["{tools}"] }}\n',
                   PATH=f"{tools}:/usr/bin:/bin")
    os.symlink(CAT, tmp_path / "out" / "cat")  # planted: it resolves to the granted cat, yet OUT_DIR decides
    os.symlink(sh, tools / "gen")  # the granted path, swapped for another binary
    os.symlink(sh, bin_dir / "hop")  # a link outside every writable dir ...
    os.symlink(bin_dir / "hop", tmp_path / "out" / "via")  # ... reached through one inside
    for program in (f"{tmp_path}/out/cat", str(tools / "gen"), "gen", f"{tmp_path}/out/via"):
        with pytest.raises(host_spawn.SpawnRefused, match="can write"):
            host_spawn.resolve(ctx, program)
    # the harmless twin: the same names, reached through nothing the script can write
    os.symlink(CAT, bin_dir / "cat")
    assert host_spawn.resolve(ctx, str(bin_dir / "cat")) == CAT
    assert host_spawn.resolve(ctx, "cat") == CAT


def test_a_writable_dir_reached_through_a_link_is_still_writable(tmp_path: Path) -> None:
    """OUT_DIR named through a link (a CARGO_TARGET_DIR under a linked directory): a binary written there is
    where the script can write, whichever of its names the grant and the request use."""
    real = tmp_path / "real"
    real.mkdir()
    linked = tmp_path / "linked"
    linked.symlink_to(real)
    ctx = make_ctx(real, grant_of(str(linked / "out" / "tool"), str(real / "out" / "tool")))
    ctx.out_dir = str(linked / "out")
    shutil.copy2(CAT, real / "out" / "tool")
    for program in (str(real / "out" / "tool"), str(linked / "out" / "tool")):
        with pytest.raises(host_spawn.SpawnRefused, match="can write"):
            host_spawn.resolve(ctx, program)


def test_the_profile_is_the_granted_names_never_the_guests_spelling(tmp_path: Path) -> None:
    """A host link named `cc` that leads to a granted `cat` runs cat, as granted, but not with the C
    compiler's profile (which lets it run and read /usr/bin, /usr/lib and /usr/include): the name the policy
    grants picks the profile."""
    cat = os.path.realpath(CAT)
    (tmp_path / "bin").mkdir()
    os.symlink(cat, tmp_path / "bin" / "cc")
    ctx = make_ctx(tmp_path, grant_of("cat"))
    requested = str(tmp_path / "bin" / "cc")
    program = host_spawn.resolve(ctx, requested)
    assert program == cat
    assert host_spawn.granted_as(ctx, requested, program) == "cat"
    confined = host_spawn.confinement(ctx, program, requested)
    assert not {"/usr/bin", "/usr/include"} & set(confined.execute)
    # the harmless twin: granted as cc, it is the C compiler, profile and all
    cc = make_ctx(tmp_path, grant_of("cc"))
    compiler = host_spawn.resolve(cc, "cc")
    assert "/usr/include" in host_spawn.confinement(cc, compiler, "cc").execute


def test_warn_mode_runs_what_is_not_granted_and_reports_it(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("ar"), mode="warn")
    assert host_spawn.resolve(ctx, "cat") == CAT
    [denial] = ctx.denials
    assert (denial.capability, denial.target) == ("process-spawn", "cat")
    assert 'programs = ["cat"]' in denial.fix


# -- environment and working directory ------------------------------------------------------------------------

def test_the_child_environment_drops_what_changes_loading_and_lookup(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    req = request("cat", env_ops=[("set", "LD_PRELOAD", "/x.so"), ("set", "COMPILER_PATH", ctx.out_dir),
                                  ("set", "GCC_EXEC_PREFIX", ctx.out_dir + "/"), ("set", "PATH", ctx.out_dir),
                                  ("set", "CFLAGS", "-O2"), ("set", "RUSTC_WRAPPER", "/x")])
    env = host_spawn.child_env(ctx, req)
    assert env["PATH"] == "/usr/bin:/bin"  # the host's
    assert env["CFLAGS"] == "-O2" and env["OUT_DIR"] == ctx.out_dir
    assert env["HOME"] == env["TMPDIR"] == ctx.tmp_dir
    for gone in ("LD_PRELOAD", "COMPILER_PATH", "GCC_EXEC_PREFIX", "RUSTC_WRAPPER", "SECRET_TOKEN"):
        assert gone not in env


def test_a_granted_loader_variable_survives_with_its_granted_value(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    ctx.env["LD_LIBRARY_PATH"] = "/opt/lib"  # as if env-access granted it
    assert host_spawn.child_env(ctx, request("cat"))["LD_LIBRARY_PATH"] == "/opt/lib"
    changed = request("cat", env_ops=[("set", "LD_LIBRARY_PATH", ctx.out_dir)])
    assert "LD_LIBRARY_PATH" not in host_spawn.child_env(ctx, changed)


def test_the_working_directory_stays_inside_the_grants(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    assert host_spawn.child_cwd(ctx, request("cat")) == ctx.package_dir
    assert host_spawn.child_cwd(ctx, request("cat", cwd=ctx.out_dir)) == ctx.out_dir
    for cwd in ("/", "..", str(tmp_path)):
        with pytest.raises(host_spawn.SpawnRefused, match="working directory"):
            host_spawn.child_cwd(ctx, request("cat", cwd=cwd))


# -- a running child ---------------------------------------------------------------------------------------------

def start(ctx: RunContext, req: abi.SpawnRequest, sinks: Sinks | None = None) -> host_spawn.RealChild:
    program = host_spawn.resolve(ctx, req.program)
    return host_spawn.RealChild(ctx, req, program, sinks or Sinks(lambda d: None, lambda d: None))


def read_all(child: host_spawn.RealChild, stream: int, deadline: float) -> bytes:
    out = b""
    while chunk := child.read(stream, 1 << 16, deadline):
        out += chunk
    return out


def test_pipes_carry_data_both_ways(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    child = start(ctx, request("cat", stdin=abi.STDIO_PIPED, stdout=abi.STDIO_PIPED, stderr=abi.STDIO_PIPED))
    data = os.urandom(300_000)  # more than a pipe holds: the drain thread keeps cat from blocking
    assert child.write_stdin(data, ctx.deadline) == len(data)
    child.close_stdin()
    assert read_all(child, abi.STREAM_STDOUT, ctx.deadline) == data
    assert child.wait(ctx.deadline) == (abi.STATUS_EXITED, 0)
    host_spawn.sweep([child])


def test_inherited_output_goes_to_the_runs_sinks(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("cat"))
    got: list[bytes] = []
    child = start(ctx, request("cat", "data.txt"), Sinks(got.append, lambda d: None))
    assert child.wait(ctx.deadline) == (abi.STATUS_EXITED, 0)
    assert b"".join(got) == b"package data\n"


@pytest.mark.skipif(landlock.abi_version() == 0, reason="Landlock unavailable")
def test_the_child_reads_only_the_package_out_dir_and_its_own_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read\n")
    ctx = make_ctx(tmp_path, grant_of("cat"))
    child = start(ctx, request("cat", str(secret), stdout=abi.STDIO_PIPED, stderr=abi.STDIO_PIPED))
    assert child.wait(ctx.deadline) == (abi.STATUS_EXITED, 1)
    assert read_all(child, abi.STREAM_STDOUT, ctx.deadline) == b""
    assert b"Permission denied" in read_all(child, abi.STREAM_STDERR, ctx.deadline)


def test_kill_and_the_childs_own_budget(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("sleep"), CRATECAGE_LIMIT_CHILD_TIME="300ms")
    child = start(ctx, request("sleep", "30"))
    started = time.monotonic()
    assert child.wait(ctx.deadline) == (abi.STATUS_SIGNALED, 9)
    assert time.monotonic() - started < 10
    assert "own budget of 0.3 s" in child.problems()[0]
    other = start(make_ctx(tmp_path, grant_of("sleep")), request("sleep", "30"))
    assert other.try_wait() is None
    other.kill()
    assert other.wait(ctx.deadline) == (abi.STATUS_SIGNALED, 9)
    assert other.problems() == []


def test_a_blocking_read_ends_at_the_runs_deadline(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, grant_of("sleep"))
    child = start(ctx, request("sleep", "30", stdout=abi.STDIO_PIPED))
    with pytest.raises(TimeoutError):
        child.read(abi.STREAM_STDOUT, 100, time.monotonic() + 0.3)
    assert host_spawn.sweep([child]) >= 1
    assert child.proc.poll() is not None


def test_a_program_runs_under_the_name_it_is_granted_as(tmp_path: Path) -> None:
    """A multi-call binary (busybox, ccache's links, clang++) does what its argv[0] says: it runs as the name
    granted (as natively, `cc` rather than the file it resolves to), also when the script named it by another
    path to the same file; granted under its own name, it is that."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "argv0.c").write_text('#include <stdio.h>\nint main(int c, char **v) { puts(v[0]); return 0; }\n')
    subprocess.run(["cc", "-o", str(bin_dir / "multi"), str(tmp_path / "argv0.c")], check=True)
    (bin_dir / "applet").symlink_to("multi")
    path = f"{bin_dir}:/usr/bin:/bin"
    for granted, program, shown in (("applet", "applet", b"applet"), ("applet", str(bin_dir / "multi"), b"applet"),
                                    ("multi", "multi", b"multi")):
        ctx = make_ctx(tmp_path, grant_of(granted), PATH=path)
        child = start(ctx, request(program, stdout=abi.STDIO_PIPED))
        assert child.wait(ctx.deadline) == (abi.STATUS_EXITED, 0)
        assert read_all(child, abi.STREAM_STDOUT, ctx.deadline).strip() == shown, (granted, program)


# -- build drivers, may-run, explicit denies --------------------------------------------------------------

def test_an_explicit_deny_is_expected_with_or_without_a_policy(tmp_path: Path) -> None:
    """A registry package with no policy at all meets the curated deny of git; the owner's deny works the same
    for a member; a member without one gets the normal refusal."""
    home = tmp_path / "cargo-home"
    registry_pkg = home / "registry" / "src" / "index.crates.io-0000" / "dep-1.0.0"
    registry_pkg.mkdir(parents=True)
    ctx = make_ctx(tmp_path, "", CARGO_HOME=str(home))
    ctx.grant, ctx.package_dir = None, str(registry_pkg)
    for program in ("git", "/usr/bin/git"):
        with pytest.raises(host_spawn.SpawnRefused) as refused:
            host_spawn.resolve(ctx, program)
        assert refused.value.expected
    member = make_ctx(tmp_path, "", CARGO_HOME=str(home))
    with pytest.raises(host_spawn.SpawnRefused) as refused:
        host_spawn.resolve(member, "git")
    assert not refused.value.expected and refused.value.reason == host_spawn.NOT_GRANTED
    owner = make_ctx(tmp_path, '[permissions.build.demo]\nprocess-spawn = { action = "deny", programs = ["git"] }\n')
    with pytest.raises(host_spawn.SpawnRefused) as refused:
        host_spawn.resolve(owner, "git")
    assert refused.value.expected


def test_a_driver_runs_the_systems_tools_and_a_plain_program_does_not(tmp_path: Path) -> None:
    sh = host_spawn.resolve(ctx := make_ctx(tmp_path, grant_of("sh", "cat")), "sh")
    assert "/usr/bin" in host_spawn.confinement(ctx, sh, "sh").execute
    assert "/usr/bin" not in host_spawn.confinement(ctx, CAT, "cat").execute
    # and runs what the run builds in OUT_DIR and the temp dir (configure's conftest); nothing else does
    assert host_spawn.confinement(ctx, sh, "sh").output == [ctx.out_dir, ctx.tmp_dir]
    assert host_spawn.confinement(ctx, CAT, "cat").output == []
    cc = host_spawn.resolve(ctx := make_ctx(tmp_path, grant_of("cc", "ar")), "cc")
    assert host_spawn.confinement(ctx, cc, "cc").output == []


def test_a_profile_path_that_is_not_roots_alone_is_left_out(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    assert host_spawn.system_path("/usr/bin", [])
    assert not host_spawn.system_path(str(mine), [])  # group- and world-writable
    assert not host_spawn.system_path("/usr/bin", ["/usr/bin/sub"])  # holds a writable dir
    assert not host_spawn.system_path("/nonexistent", [])


def test_may_run_adds_what_it_names_and_never_a_writable_dir(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy2(CAT, tools / "mytool")
    ctx = make_ctx(tmp_path, '[permissions.build.demo]\n'
                             f'process-spawn = {{ action = "permit", programs = ["sh"], may-run = ["{tools}", "cat"] }}\n')
    sh = host_spawn.resolve(ctx, "sh")
    execute = host_spawn.confinement(ctx, sh, "sh").execute
    assert str(tools) in execute and CAT in execute
    bad = make_ctx(tmp_path, '[permissions.build.demo]\n'
                             f'process-spawn = {{ action = "permit", programs = ["sh"], may-run = ["{tmp_path}"] }}\n')
    with pytest.raises(host_spawn.SpawnRefused, match="can write"):
        host_spawn.confinement(bad, sh, "sh")  # it holds OUT_DIR and the temp dir


def test_a_scripts_interpreters_run_with_it(tmp_path: Path) -> None:
    script = tmp_path / "gen"
    script.write_text("#!/usr/bin/env sh\necho hi\n")
    found = host_spawn.script_interpreters(str(script), "/usr/bin:/bin")
    assert found == [os.path.realpath("/usr/bin/env"), os.path.realpath(shutil.which("sh", path="/usr/bin:/bin"))]
    assert host_spawn.script_interpreters(CAT, "/usr/bin:/bin") == []


def watched(tmp_path: Path, ctx: RunContext, program: str, *args: str) -> list[bytes]:
    """Run granted `program` with `args` in `ctx` (exec watch on), its stdout's words; then the watch's reports
    are in ctx.denials and ctx.output_runs."""
    ctx.host_dir = str(tmp_path / "host")
    os.makedirs(ctx.host_dir, exist_ok=True)
    child = host_spawn.RealChild(ctx, request(program, *args, stdout=abi.STDIO_PIPED),
                                 host_spawn.resolve(ctx, program), Sinks(lambda _: None, lambda _: None))
    child.wait(time.monotonic() + 60)
    out = child.read(abi.STREAM_STDOUT, 1000, time.monotonic() + 5).split()
    host_spawn.watched_execs(ctx)
    return out


@pytest.mark.skipif(landlock.abi_version() < 1, reason="needs Landlock")
def test_what_a_driver_ran_of_its_output_and_was_refused_is_reported(tmp_path: Path) -> None:
    """sh runs binaries the run built in OUT_DIR and the temp dir (reported as output runs, for the audit)
    and is refused one in a writable grant and a tool outside the system's directories (reported, the second
    with the may-run entry); the system tool runs."""
    (tmp_path / "w").mkdir()
    ctx = make_ctx(tmp_path, grant_of("sh") + f'filesystem-access = {{ action = "permit", writable = ["{tmp_path}/w"] }}\n')
    (tmp_path / "tools").mkdir()
    for where in ("tools/mytool", "out/built", "tmp/built", "w/evil"):
        shutil.copy2(shutil.which("true") or "/bin/true", tmp_path / where)
    script = "; ".join(f"{tmp_path}/{where}; echo $?" for where in ("out/built", "out/built", "tmp/built", "w/evil",
                                                                   "tools/mytool")) + "; true; echo $?"
    assert watched(tmp_path, ctx, "sh", "-c", script) == [b"0", b"0", b"0", b"126", b"126", b"0"]
    evil, tool = ctx.denials
    assert evil.target == f"{tmp_path}/w/evil" and "never run" in evil.reason and not evil.fix
    assert tool.target == f"{tmp_path}/tools/mytool" and f'may-run = ["{tmp_path}/tools/mytool"]' in tool.fix
    assert not evil.fatal and not tool.fatal
    assert sorted((r.program, r.started_by.split()[0], r.count) for r in ctx.output_runs) == [
        (f"{tmp_path}/out/built", "sh", 2), (f"{tmp_path}/tmp/built", "sh", 1)]  # "sh (/usr/bin/dash)"


@pytest.mark.skipif(landlock.abi_version() < 1 or not shutil.which("cc"), reason="needs Landlock and cc")
def test_a_compiler_runs_nothing_the_run_built(tmp_path: Path) -> None:
    """A compiler is no build driver: `-wrapper` (or `-B`) pointing into OUT_DIR makes it exec the run's own
    output, which its confinement refuses, and the denial says only a driver runs it."""
    ctx = make_ctx(tmp_path, grant_of("cc"))
    shutil.copy2(shutil.which("true") or "/bin/true", tmp_path / "out" / "wrap")
    watched(tmp_path, ctx, "cc", "-x", "c", "/dev/null", "-c", "-o", f"{tmp_path}/out/x.o",
            "-wrapper", f"{tmp_path}/out/wrap")
    assert not (tmp_path / "out" / "x.o").exists()
    [denial] = ctx.denials
    assert denial.target == f"{tmp_path}/out/wrap" and "only under a granted build driver" in denial.reason
    assert not ctx.output_runs


def test_exec_reports_round_trip_and_a_torn_one_is_dropped() -> None:
    from shim.confine.exec_watch import read_report, record

    data = record("refused", "/o/evil", "/o/evil", "/usr/bin/dash", "sh") + record("ran", "/a\nb", "/c", "", "git")
    assert read_report(data) == [
        {"verdict": "refused", "program": "/o/evil", "file": "/o/evil", "by": "/usr/bin/dash", "granted": "sh"},
        {"verdict": "ran", "program": "/a\nb", "file": "/c", "by": "", "granted": "git"}]
    assert read_report(data + b"/x\0/y\0") == read_report(data)


def test_the_exec_watch_never_blocks_on_or_quotes_a_file_the_tree_chose(tmp_path: Path) -> None:
    """The watch's thread runs unconfined on paths the confined tree names (shim.confine.exec_watch): a FIFO (which
    blocks an open for reading until a writer comes) or a device is no program and is never opened blocking,
    and a `#!` line is reported only as an executable file that exists, never as the words of a file."""
    import threading

    from shim.confine import exec_watch

    fifo, secret, script = tmp_path / "fifo", tmp_path / "secret", tmp_path / "tools" / "gen"
    os.mkfifo(fifo, 0o755)
    secret.write_text("#!hunter2-token not-a-path\n")
    secret.chmod(0o755)
    script.parent.mkdir()
    script.write_text("#!/nonexistent/hunter2-token\n")
    script.chmod(0o755)
    watch = exec_watch.Watch(str(tmp_path / "report"), [str(script.parent)], "sh")
    answers: list[object] = []
    reader = threading.Thread(target=lambda: answers.extend(
        [watch.verdict(str(fifo)), exec_watch._interpreter(str(fifo)), watch.verdict("/dev/zero"),
         exec_watch._interpreter(str(secret)), watch.verdict(str(script)), watch.verdict(str(secret))]), daemon=True)
    reader.start()
    reader.join(10)
    assert answers == [None, None, None, None, None, ("refused", str(secret))]
    os.close(watch.report)


def fake_profile(root: Path) -> Path:
    """A cargo target directory as a build leaves it: `debug/` with its lock and fingerprints, CACHEDIR.TAG."""
    (root / "debug" / ".fingerprint").mkdir(parents=True)
    (root / "debug" / ".cargo-lock").write_text("")
    (root / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    return root / "debug"


@pytest.mark.parametrize("spelling", [
    "{t}/debug/build/other-1a2b/out/tool",  # another crate's OUT_DIR
    "{t}/debug/build/other-1a2b/out/a/b/c/d/e/f/g/h/tool",  # deeper than any fixed walk up
    "{t}/debug/deps/",  # other crates' products, with a trailing slash
    "{t}/debug/build/../deps/x",  # `..`
    "{link}/tool",  # a link elsewhere into an OUT_DIR
    "{t}",  # the target directory, holding the profile
    "{ws}",  # a tree holding a target directory
    "tool",  # a bare name the host's PATH finds in an OUT_DIR
])
def test_may_run_never_names_cargos_build_output(tmp_path: Path, spelling: str) -> None:
    """A driver granted `may-run` of a file in another crate's OUT_DIR or among cargo's products would run
    what that crate's build script or compile chose (red team, issue 11): refused at the grant, however
    spelled, in a target directory elsewhere too."""
    ws = tmp_path / "ws"
    target = ws / "elsewhere-target"
    out = fake_profile(target) / "build" / "other-1a2b" / "out"
    (out / "a/b/c/d/e/f/g/h").mkdir(parents=True)
    (target / "debug" / "deps").mkdir()
    for tool in (out / "tool", out / "a/b/c/d/e/f/g/h/tool", target / "debug" / "deps" / "x"):
        shutil.copy2(shutil.which("true") or "/bin/true", tool)
    (tmp_path / "link").symlink_to(out)
    item = spelling.format(t=target, ws=ws, link=tmp_path / "link")
    ctx = make_ctx(tmp_path, '[permissions.build.demo]\n'
                             f'process-spawn = {{ action = "permit", programs = ["sh"], may-run = ["{item}"] }}\n',
                   PATH=f"{out}:/usr/bin:/bin")
    with pytest.raises(host_spawn.SpawnRefused, match="cargo's build output"):
        host_spawn.confinement(ctx, host_spawn.resolve(ctx, "sh"), "sh")


@pytest.mark.skipif(landlock.abi_version() < 1, reason="needs Landlock")
def test_a_driver_refused_another_crates_product_gets_no_may_run_entry(tmp_path: Path) -> None:
    """The paste-ready entry is never offered for a file in cargo's build output; a tool beside it is."""
    ctx = make_ctx(tmp_path, grant_of("sh"))
    ctx.host_dir = str(tmp_path / "host")
    os.mkdir(ctx.host_dir)
    out = fake_profile(tmp_path / "target") / "build" / "other-1a2b" / "out"
    out.mkdir(parents=True)
    (tmp_path / "tools").mkdir()
    for tool in (out / "product", tmp_path / "tools" / "mytool"):
        shutil.copy2(shutil.which("true") or "/bin/true", tool)
    child = host_spawn.RealChild(ctx, request("sh", "-c", f"{out}/product; {tmp_path}/tools/mytool", stdout=abi.STDIO_PIPED),
                                 host_spawn.resolve(ctx, "sh"), Sinks(lambda _: None, lambda _: None))
    child.wait(time.monotonic() + 60)
    host_spawn.watched_execs(ctx)
    product, tool = ctx.denials
    assert product.target == f"{out}/product" and "cargo's build output" in product.reason and not product.fix
    assert tool.target == f"{tmp_path}/tools/mytool" and "may-run" in tool.fix
