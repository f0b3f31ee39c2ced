"""Granted programs (issue 5, processes): a build script runs what the policy names for its crate, confined,
and nothing else. Real cargo through the wrapper, the real `cc` crate and gcc, real -sys crates from
crates.io; hostile scripts (fixtures/hostile-spawn) that try to get out through the programs they run."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shim.confine import landlock

from conftest import FIXTURES, WRAPPER, Cargo, CargoRun, scrubbed, write_test_env
from target_dirs import out_dirs, script_unit_files

pytestmark = pytest.mark.integration

CC_GRANT = '[permissions.build.{crate}]\nprocess-spawn = {{ action = "permit", programs = [{programs}] }}\n'


def policy(package: Path, crate: str, *programs: str) -> None:
    (package / "cratecage.toml").write_text(CC_GRANT.format(crate=crate, programs=", ".join(
        json.dumps(p) for p in programs)))


def audit_events(target: Path) -> list[dict]:
    log = target / "cratecage" / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# -- the cc crate on a C file --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sys_demo(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp(f"sys-{cargo.layout}") / "sys-demo"
    shutil.copytree(FIXTURES / "sys-demo", package)
    return package


def test_cc_is_refused_without_a_grant_with_the_entry_to_paste(cargo: Cargo, sys_demo: Path,
                                                                 targets: Path) -> None:
    (sys_demo / "cratecage.toml").unlink(missing_ok=True)
    run = cargo(sys_demo, "build", wrapped=True, target_dir=targets / "sys-refused", check=False)
    assert not run.ok
    err = run.proc.stderr
    assert "cratecage: build script of sys-demo 0.1.0: process-spawn denied: cc" in err, err[-3000:]
    assert ('[permissions.build.sys-demo]\n      '
            'process-spawn = { action = "permit", programs = ["cc"] }') in err  # cargo indents it by 2
    # cc-rs asks several times (and echoes the error in its own messages); cratecage lists one denial
    assert err.count("\n  cratecage: build script of sys-demo 0.1.0: process-spawn denied: cc:") == 1, err
    denials = [e for e in audit_events(targets / "sys-refused") if e["event"] == "denial"]
    assert {(d["capability"], d["target"]) for d in denials} == {("process-spawn", "cc")}


def test_cc_builds_the_c_code_once_granted_and_the_program_calls_it(cargo: Cargo, sys_demo: Path,
                                                                     targets: Path) -> None:
    policy(sys_demo, "sys-demo", "cc", "ar")
    run = cargo(sys_demo, "run", wrapped=True, target_dir=targets / "sys-granted")
    assert "answer: 42" in run.proc.stdout
    spawns = [e for e in audit_events(targets / "sys-granted") if e["event"] == "spawn"]
    programs = {e["argv"][0] for e in spawns}
    assert programs == {"cc", "ar"}, spawns
    compile_ = [e for e in spawns if "src/answer.c" in e["argv"]]
    assert compile_ and compile_[0]["program"] == os.path.realpath(shutil.which("cc"))
    archive = next(e for e in spawns if e["argv"][0] == "ar")
    assert archive["argv"][-1].endswith("-answer.o")


def test_a_deny_entry_beats_the_grant(cargo: Cargo, sys_demo: Path, targets: Path) -> None:
    (sys_demo / "cratecage.toml").write_text(
        CC_GRANT.format(crate="sys-demo", programs='"cc", "ar"')
        + '[permissions.build.sys_demo]\nprocess-spawn = { action = "deny", programs = ["ar"] }\n')
    run = cargo(sys_demo, "build", wrapped=True, target_dir=targets / "sys-deny", check=False)
    assert not run.ok  # cc-rs cannot do without its archiver, which it is told is not there
    assert "process-spawn denied as the policy says: ar" in run.proc.stderr


def test_init_learns_the_compiler_and_the_archiver_in_one_warn_build(cargo: Cargo, sys_demo: Path,
                                                                        targets: Path) -> None:
    """Warn mode runs programs that are not granted (confined as if they were) and reports them, so one
    `cratecage init` proposes both `cc` and `ar`, which a refused `cc` would have hidden."""
    (sys_demo / "cratecage.toml").unlink(missing_ok=True)
    env = {**scrubbed(dict(os.environ)), **cargo.env}
    proposed = subprocess.run([str(WRAPPER), "init"], cwd=sys_demo, capture_output=True, text=True, env=env,
                              timeout=600)
    assert proposed.returncode == 0, proposed.stderr[-3000:]
    proposal = (sys_demo / "cratecage.toml").read_text()
    assert "[permissions.build.sys-demo]  # sys-demo 0.1.0" in proposal
    assert '"ar"' in proposal and '"cc"' in proposal, proposal
    run = cargo(sys_demo, "run", wrapped=True, target_dir=targets / "sys-after-init")  # enforcing
    assert "answer: 42" in run.proc.stdout


# -- real -sys crates ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zlib_demo(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp(f"zlib-{cargo.layout}") / "zlib-demo"
    shutil.copytree(FIXTURES / "zlib-demo", package)
    return package


def system_zlib_version() -> str:
    return subprocess.run(["pkg-config", "--modversion", "zlib"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_libz_sys_links_the_system_zlib_through_pkg_config(cargo: Cargo, zlib_demo: Path, targets: Path) -> None:
    policy(zlib_demo, "libz-sys", "cc", "ar", "pkg-config")
    run = cargo(zlib_demo, "run", "--locked", wrapped=True, target_dir=targets / "zlib-pkg-config")
    assert f"zlib {system_zlib_version()}" in run.proc.stdout
    spawns = [e["argv"] for e in audit_events(targets / "zlib-pkg-config") if e["event"] == "spawn"]
    assert ["pkg-config", "--libs", "--cflags", "zlib"] in spawns, spawns


def test_libz_sys_builds_its_bundled_zlib_with_cc(cargo: Cargo, zlib_demo: Path, targets: Path) -> None:
    policy(zlib_demo, "libz-sys", "cc", "ar")
    run = cargo(zlib_demo, "run", "--locked", "--features", "static", wrapped=True,
                target_dir=targets / "zlib-static")
    bundled = run.proc.stdout.strip().rsplit(" ", 1)[-1]
    assert run.proc.stdout.startswith("zlib ") and bundled != system_zlib_version(), run.proc.stdout
    spawns = [e["argv"] for e in audit_events(targets / "zlib-static") if e["event"] == "spawn"]
    assert sum(1 for a in spawns if a[0] == "cc" and "-c" in a) >= 10  # zlib's C files, one cc each
    assert not any(a[0] == "pkg-config" for a in spawns)


def test_without_pkg_config_granted_libz_sys_says_what_to_add(cargo: Cargo, zlib_demo: Path,
                                                              targets: Path) -> None:
    policy(zlib_demo, "libz-sys", "cc", "ar")
    run = cargo(zlib_demo, "build", "--locked", wrapped=True, target_dir=targets / "zlib-no-pkg", check=False)
    said = run.proc.stderr + run.proc.stdout
    assert 'process-spawn = { action = "permit", programs = ["pkg-config"] }' in said
    # The pkg-config crate then tries `pkgconf`: a consequence, reported without an entry of its own.
    assert "pkgconf" in said and "grant pkg-config" in said, said[-3000:]
    assert 'programs = ["pkgconf"]' not in said and "pkgconf\"" not in said


# -- hostile ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attack:
    feature: str
    ok: bool
    expect: tuple[str, ...]
    absent: tuple[str, ...] = field(default=())


ATTACKS = [
    Attack("spawn-sh", False, ("process-spawn denied: sh", 'programs = ["sh"]')),
    Attack("spawn-curl", False, ("process-spawn denied: curl", 'programs = ["curl"]')),
    Attack("cat-canary", True, ("hostile cat-canary: exit status: 1", "Permission denied")),
    Attack("cat-twin", True, ('hostile cat-twin: exit status: 0 stdout="harmless data inside the package\\n"',)),
    Attack("cc-plugin", True, ("hostile plugin-report: read: Permission denied",
                               "hostile plugin-report: write: ",  # EACCES, or EROFS (shim.confine.mountns)
                               "hostile plugin-report: connect: Permission denied"),
           ("read: ok", "write: ok", "connect: ok")),
    Attack("cc-twin", True, ("hostile cc-twin: exit status: 0",)),
    Attack("path-hijack", True, ("hostile build-fake-as: exit status: 0", "hostile env-hijack: exit status: 0",
                                 "hostile env-hijack-ran: false", "hostile b-hijack-ran: false")),
]


@pytest.fixture(scope="module")
def arena(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The hostile package, a canary it must never read, a file it must never create, a listening port it
    must never reach, and the native helpers the tests build (a gcc plugin, a double-forking program)."""
    root = tmp_path_factory.mktemp(f"hostile-spawn-{cargo.layout}")
    package = root / "pkg" / "hostile-spawn"
    shutil.copytree(FIXTURES / "hostile-spawn", package)
    token = "CANARY" + secrets.token_hex(8)
    (root / "secret").mkdir()
    canary = root / "secret" / "id_rsa"
    canary.write_text(token + "\n")
    outside = root / "outside-written"
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[bool] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(True)
                conn.close()
            except OSError:
                continue

    threading.Thread(target=serve, daemon=True).start()
    tools = root / "tools"  # outside everything the build script can write
    tools.mkdir()
    native = package / "native"
    subprocess.run(["cc", "-shared", "-fPIC", f'-DCANARY="{canary}"', f'-DOUTSIDE="{outside}"', f"-DPORT={port}",
                    "-o", str(package / "evil.so"), str(native / "evil_plugin.c")], check=True)
    subprocess.run(["cc", "-o", str(tools / "forker"), str(native / "forker.c")], check=True)
    subprocess.run(["cc", "-pthread", "-o", str(tools / "procs"), str(native / "procs.c")], check=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-pthread", "-o", str(package / "zplug.so"), str(native / "zplug.c")],
                   check=True)
    gen = root / "gen"  # a writable grant
    gen.mkdir()
    policy(package, "hostile-spawn", "cc", "cat", str(tools / "forker"), str(tools / "procs"))
    with (package / "cratecage.toml").open("a") as f:
        f.write(f'filesystem-access = {{ action = "permit", writable = [{json.dumps(str(gen))}] }}\n')
    tmp = root / "tmp"  # the runner's TMPDIR: nothing of a run may go there, or stay
    tmp.mkdir()
    yield {"package": package, "canary": canary, "token": token, "outside": outside, "accepted": accepted,
           "forker": tools / "forker", "procs": tools / "procs", "marker": "cratecage_procs_" + secrets.token_hex(6),
           "gen": gen, "tmp": tmp}
    stop.set()
    server.close()


def build(cargo: Cargo, arena: dict, targets: Path, feature: str, limits: dict[str, str] | None = None) -> CargoRun:
    env = {"HOSTILE_CANARY": str(arena["canary"]), "HOSTILE_PLUGIN": str(arena["package"] / "evil.so"),
           "HOSTILE_FORKER": str(arena["forker"]), "HOSTILE_PROCS": str(arena["procs"]),
           "HOSTILE_MARKER": arena["marker"], "HOSTILE_GEN": str(arena["gen"]),
           "HOSTILE_ZPLUG": str(arena["package"] / "zplug.so")}
    write_test_env(arena["package"], env)
    env.update({"TMPDIR": str(arena["tmp"]), **(limits or {})})
    arena["target"] = targets / "hostile-spawn"
    return cargo(arena["package"], "build", "--features", feature, wrapped=True,
                 target_dir=targets / "hostile-spawn", extra_env=env, check=False)


def outputs_of(target: Path) -> bytes:
    files = script_unit_files(target, "hostile-spawn")
    assert files, f"no build-script unit of hostile-spawn under {target}"
    return b"".join(path.read_bytes() for path in files if path.stat().st_size < (8 << 20))


@pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4 (TCP) to confine granted programs")
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.feature for a in ATTACKS])
def test_attack(cargo: Cargo, arena: dict, targets: Path, attack: Attack) -> None:
    run = build(cargo, arena, targets, attack.feature)
    text = run.proc.stderr + run.proc.stdout
    assert run.ok == attack.ok, text[-3000:]
    for expected in attack.expect:
        assert expected in text, text[-3000:]
    for unexpected in attack.absent:
        assert unexpected not in text
    assert "Traceback" not in text
    assert arena["token"] not in text
    assert arena["token"].encode() not in outputs_of(targets / "hostile-spawn")
    assert not arena["outside"].exists()
    assert not arena["accepted"]


def test_a_double_forked_grandchild_does_not_outlive_the_run(cargo: Cargo, arena: dict, targets: Path) -> None:
    run = build(cargo, arena, targets, "double-fork")
    assert run.ok, run.proc.stderr[-3000:]
    assert 'hostile double-fork: exit status: 0 stdout="forked\\n"' in run.proc.stderr
    pid_files = [p for out in out_dirs(targets / "hostile-spawn", "hostile-spawn") for p in out.glob("grandchild.pid")]
    assert len(pid_files) == 1 and pid_files[0].read_text().strip().isdigit()
    # the pid it wrote is its own in the PID namespace of its program (shim.confine.pidns): look for its argv instead
    assert marked_processes(str(pid_files[0])) == [], "the grandchild outlived the run"


# -- processes, memory and disk of granted programs and probes (issue 9, class D) ------------------------------

def marked_processes(marker: str) -> list[int]:
    """PIDs whose argv holds `marker` (procs.c and the probes carry it; fork keeps the argv), read from every
    task: a process whose main thread exited shows as Z with an empty cmdline while its other threads run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                tasks = list((entry / "task").iterdir())
            except OSError:
                continue
            for task in tasks:
                try:
                    if marker.encode() in (task / "cmdline").read_bytes():
                        found.append(int(entry.name))
                        break
                except OSError:
                    continue
    return found


def assert_nothing_survives(arena: dict) -> None:
    survivors = marked_processes(arena["marker"])
    for pid in survivors:  # ours by the marker: never leave them running, even when the test fails
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    assert survivors == [], "processes of the run outlived it"
    assert [p.name for p in arena["tmp"].iterdir()] == [], "a run or probe directory was left behind"
    runs = arena["target"] / "cratecage" / "tmp"  # where run directories live (shim.build.run.make_run_dir)
    assert [p.name for p in runs.glob("run-*")] == [], "a run directory was left behind"


@dataclass(frozen=True)
class Limit:
    feature: str
    ok: bool
    expect: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


STOPPED = "cratecage: build script of hostile-spawn 0.1.0 stopped: "
DISK_32M = {"CRATECAGE_LIMIT_DISK": "32MiB"}
MEM_128M = {"CRATECAGE_LIMIT_CHILD_MEMORY": "128MiB"}
LIMITS = [
    Limit("fork-twin", True, ('hostile fork-twin: exit status: 0 stdout="children done\\n"',),
          {"CRATECAGE_LIMIT_PROCESSES": "50"}),
    Limit("fork-flood", False, (STOPPED + "its programs ran more than 50 processes at once (CRATECAGE_LIMIT_PROCESSES)",),
          {"CRATECAGE_LIMIT_PROCESSES": "50"}),
    Limit("memory-twin", True, ('hostile memory-twin: exit status: 0 stdout="allocated 32 MiB\\n"',), MEM_128M),
    Limit("memory-hog", False, (STOPPED + "its programs used more than 134217728 bytes of memory",
                                "CRATECAGE_LIMIT_CHILD_MEMORY)"), MEM_128M),
    Limit("disk-twin", True, ('hostile disk-twin: exit status: 0 stdout="wrote 8 MiB\\n"',), DISK_32M),
    Limit("disk-tmp", False, (STOPPED + "wrote more than 33554432 bytes into OUT_DIR, the temp dir and writable "
                                        "grants (CRATECAGE_LIMIT_DISK)",), DISK_32M),
    Limit("disk-grant", False, (STOPPED + "wrote more than 33554432 bytes into OUT_DIR, the temp dir and writable "
                                          "grants (CRATECAGE_LIMIT_DISK)",), DISK_32M),
    Limit("probe-twin", True, ("hostile probe-twin: exit status: 0",), {"CRATECAGE_LIMIT_TIME": "5"}),
    Limit("probe-forever", False, ("cratecage: build script of hostile-spawn 0.1.0 ",
                                   "ran longer than 5 s (CRATECAGE_LIMIT_TIME)"), {"CRATECAGE_LIMIT_TIME": "5"}),
]


@pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4 (TCP) to confine granted programs")
@pytest.mark.parametrize("limit", LIMITS, ids=[a.feature for a in LIMITS])
def test_limit(cargo: Cargo, arena: dict, targets: Path, limit: Limit) -> None:
    run = build(cargo, arena, targets, limit.feature, limit.env)
    text = run.proc.stderr + run.proc.stdout
    assert run.ok == limit.ok, text[-3000:]
    for expected in limit.expect:
        assert expected in text, text[-3000:]
    assert "Traceback" not in text and arena["token"] not in text
    assert_nothing_survives(arena)
    for leftover in arena["gen"].iterdir():
        leftover.unlink()


@pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4 (TCP) to confine granted programs")
def test_a_fallocate_burst_is_written_block_by_block_and_what_it_added_to_out_dir_is_removed(
        cargo: Cargo, arena: dict, targets: Path) -> None:
    """fallocate is refused (shim.confine.seccomp: EOPNOTSUPP), so glibc's posix_fallocate writes the blocks, which
    the poll sees; the stop for the disk limit removes what the run added to OUT_DIR (shim.sandbox.usage): red4 left
    2.4 GiB there. The twin is disk-twin above (8 MiB written, the run succeeds)."""
    run = build(cargo, arena, targets, "disk-falloc", DISK_32M)
    text = run.proc.stderr + run.proc.stdout
    assert not run.ok and STOPPED + "wrote more than 33554432 bytes into OUT_DIR" in text, text[-3000:]
    assert "what it added to OUT_DIR (" in text and ") was removed" in text, text[-3000:]
    outs = out_dirs(targets / "hostile-spawn", "hostile-spawn")
    left = [p for out in outs for p in out.glob("falloc-*")]
    assert outs
    assert left == [], left
    assert_nothing_survives(arena)


@pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4 (TCP) to confine granted programs")
def test_a_reforking_daemon_is_gone_before_the_checks_and_plants_nothing(cargo: Cargo, arena: dict,
                                                                          targets: Path) -> None:
    """Each generation of the daemon forks the next and exits, so a one-shot sweep always misses the newest;
    1.5 s in, it would replace OUT_DIR/target.txt (which src/main.rs include_str!s) by a symlink to the
    canary, after the post-run checks. The run stops the whole tree first. (A generation lives 2 ms, less
    than one scan of /proc takes, so the marker scan cannot see this daemon; the planted file is the proof
    it is gone: with the old one-shot psutil sweep this test fails on it.)"""
    run = build(cargo, arena, targets, "chain-plant")
    text = run.proc.stderr + run.proc.stdout
    assert run.ok, text[-3000:]
    assert 'hostile chain-plant: exit status: 0 stdout="chain started\\n"' in text, text[-3000:]
    assert_nothing_survives(arena)
    time.sleep(2.0)  # past the daemon's planting time: still nothing, nowhere
    assert_nothing_survives(arena)
    planted = [p for out in out_dirs(targets / "hostile-spawn", "hostile-spawn") for p in out.glob("target.txt")]
    assert planted and all(not p.is_symlink() and p.read_text() == "harmless\n" for p in planted)
    binary = (targets / "hostile-spawn" / "debug" / "hostile-spawn").read_bytes()
    assert arena["token"].encode() not in binary + outputs_of(targets / "hostile-spawn")
    assert arena["token"] not in text


# -- daemons /proc shows as dead (red2 finding 1) ---------------------------------------------------------------

@dataclass(frozen=True)
class Daemon:
    feature: str
    expect: str
    plants: bool = True


DAEMONS = [
    Daemon("zombie-plant", 'hostile zombie-plant: exit status: 0 stdout="zombie started\\n"'),
    Daemon("zombie-stop", 'hostile zombie-stop: exit status: 0 stdout="zombie started\\n"'),
    Daemon("zombie-trace", 'hostile zombie-trace: exit status: 0 stdout="zombie started\\n"'),
    Daemon("zombie-twin", 'hostile zombie-twin: exit status: 0 stdout="zombie started\\n"', plants=False),
    Daemon("zcc-plant", "hostile zcc-plant: exit status: 0"),
    Daemon("zcc-twin", "hostile zcc-twin: exit status: 0", plants=False),
]


@pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4 (TCP) to confine granted programs")
@pytest.mark.parametrize("daemon", DAEMONS, ids=[d.feature for d in DAEMONS])
def test_a_daemon_whose_main_thread_exited_is_gone_before_the_checks(cargo: Cargo, arena: dict, targets: Path,
                                                                      daemon: Daemon) -> None:
    """A granted program (procs.c, or cc loading native/zplug.c) leaves a daemon in its own session whose
    main thread exited with SYS_exit while another thread runs on: /proc/<pid>/stat says Z, killpg misses
    it, and once the runner has exited it would replace OUT_DIR/target.txt (which src/main.rs include_str!s)
    by a symlink to the canary. Stopped (SIGSTOP) and ptrace-stopped variants too. The run ends them all
    before its checks; the twins end by themselves and build."""
    run = build(cargo, arena, targets, daemon.feature)
    text = run.proc.stderr + run.proc.stdout
    assert run.ok, text[-3000:]
    assert daemon.expect in text, text[-3000:]
    assert_nothing_survives(arena)
    time.sleep(0.5)  # a planter would act as soon as the runner is gone: still nothing, nowhere
    assert_nothing_survives(arena)
    planted = [p for out in out_dirs(targets / "hostile-spawn", "hostile-spawn") for p in out.glob("target.txt")]
    assert planted and all(not p.is_symlink() and p.read_text() == "harmless\n" for p in planted)
    assert not [p for out in out_dirs(targets / "hostile-spawn", "hostile-spawn") for p in out.glob("target.txt.new")]
    binary = (targets / "hostile-spawn" / "debug" / "hostile-spawn").read_bytes()
    assert b"harmless\n" in binary  # target.txt as the build script wrote it
    assert arena["token"].encode() not in binary + outputs_of(targets / "hostile-spawn")
    assert arena["token"] not in text
