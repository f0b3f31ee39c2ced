"""What a sandboxed run may read, plant and change on the filesystem (issue 9, classes D and E): read-only
grants stay read-only by every route, writable grants and OUT_DIR hold only files, directories and links
that stay inside, metadata outside the write set does not change, and the target directory (inside the
package here, as in every single-package project) is unreadable but for the script's own OUT_DIR.
Real cargo through the real wrapper on fixtures/hostile-fs; every attack has a harmless twin."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shim.confine import landlock

from conftest import FIXTURES, Cargo, CargoRun
from target_dirs import crate_outputs, out_dirs, script_unit_files

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(landlock.abi_version() < 1, reason="granted programs need Landlock")]

PROGRAMS = ["sh", "cat", "ln", "mkfifo", "mknod", "chmod", "touch", "chown", "stat"]
RO_TEXT = "granted read-only data\n"
TIME = {"CRATECAGE_LIMIT_TIME": "60s"}  # a FIFO that blocked would fail the build, not hang it


@pytest.fixture(scope="module")
def arena(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp(f"hostile-fs-{cargo.layout}")
    package = root / "pkg" / "hostile-fs"
    shutil.copytree(FIXTURES / "hostile-fs", package)
    token = "CANARY" + secrets.token_hex(8)
    granted = root / "granted"
    granted.mkdir()
    ro_file = granted / "settings.conf"
    ro_file.write_text(RO_TEXT)
    (granted / "sibling.txt").write_text("a sibling nobody granted\n")
    writable = root / "writable"
    writable.mkdir()
    outside = root / "outside.txt"
    outside.write_text("outside every grant\n")
    os.chmod(outside, 0o644)
    os.utime(outside, (1_600_000_000, 1_600_000_000))
    (package / "arena.txt").write_text(f"ro_file={ro_file}\nwritable={writable}\noutside={outside}\n")
    (package / "cratecage.toml").write_text(
        "[permissions.build.hostile-fs]\n"
        f"filesystem-access = {{ action = \"permit\", paths = [{json.dumps(str(ro_file))}], "
        f"writable = [{json.dumps(str(writable))}] }}\n"
        f"process-spawn = {{ action = \"permit\", programs = {json.dumps(PROGRAMS)} }}\n"
        'env-access = { action = "permit", vars = ["HOSTILE_FS_SECRET"] }\n')
    return {"root": root, "package": package, "token": token, "ro_file": ro_file, "writable": writable,
            "outside": outside}


def snapshot(root: Path, skip: Path) -> set[str]:
    """Every path under `root` but the target dir `skip` (and cargo's own Cargo.lock)."""
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip and p.name != "Cargo.lock"}


def build(cargo: Cargo, arena: dict, features: str, env: dict[str, str] | None = None) -> CargoRun:
    return cargo(arena["package"], "build", "--features", features, wrapped=True,
                 target_dir=arena["package"] / "target", extra_env={**TIME, **(env or {})}, check=False)


def outputs_of(target: Path) -> bytes:
    """What the script and cratecage left: every file of the script's build units (not cargo's own
    fingerprints, which hold a granted variable's value by cargo's design)."""
    files = script_unit_files(target, "hostile-fs")
    assert files, f"no build-script unit of hostile-fs under {target}"
    return b"".join(path.read_bytes() for path in files if path.stat().st_size < (8 << 20))


def no_special_files(*roots: Path) -> None:
    for root in roots:
        for path in root.rglob("*"):
            mode = path.lstat().st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode), path


@dataclass(frozen=True)
class Attack:
    feature: str
    ok: bool
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = field(default=())


ATTACKS = [
    Attack("ro-write-guest", False, ("filesystem-access denied: write", "files named like it in TMPDIR: 0")),
    Attack("ro-write-spawn", True, ("hostile-fs ro-write-spawn: exit status: ",)),
    Attack("ro-read-twin", True, (f"hostile-fs ro-read-twin guest: {RO_TEXT.strip()}",
                                  f'hostile-fs ro-read-twin cat: exit status: 0 stdout="{RO_TEXT.strip()}\\n"')),
    Attack("plant-link", False, ("filesystem-access denied", "symbolic link in the writable grant",
                                 "points outside it")),
    Attack("writable-twin", True, ("hostile-fs writable-twin sh: exit status: 0",)),
    Attack("fifo", True, ("hostile-fs fifo mkfifo: exit status: 1",), ("fifo mkfifo: exit status: 0",
                                                                         "fifo mknod-p: exit status: 0",
                                                                         "fifo mknod-c: exit status: 0")),
    Attack("chmod-outside", True, ("hostile-fs chmod-outside chmod: exit status: 1",
                                   "hostile-fs chmod-outside touch: exit status: 1"),
           ("chmod-outside chmod: exit status: 0", "chmod-outside touch: exit status: 0",
            "chmod-outside chown: exit status: 0")),
    Attack("chmod-twin", True, ('hostile-fs chmod-twin stat: exit status: 0 stdout="600 981173106\\n"',)),
    Attack("target-read-twin", True, ("hostile-fs target-read-twin: own output harmless data inside the package",)),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.feature for a in ATTACKS])
def test_attack(cargo: Cargo, arena: dict, attack: Attack) -> None:
    target = arena["package"] / "target"
    before = snapshot(arena["root"], target)
    run = build(cargo, arena, attack.feature)
    text = run.proc.stderr + run.proc.stdout
    assert run.ok == attack.ok, text[-3000:]
    for expected in attack.expect:
        assert expected in text, text[-3000:]
    for unexpected in attack.absent:
        assert unexpected not in text, text[-3000:]
    assert "Traceback" not in text
    if not attack.ok:
        assert "cratecage: build script of hostile-fs 0.1.0" in text
    # read-only stays read-only, metadata outside the grants stays, nothing special is left behind
    assert arena["ro_file"].read_text() == RO_TEXT
    st = arena["outside"].stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_mtime == 1_600_000_000 and st.st_uid == os.getuid()
    assert arena["outside"].read_text() == "outside every grant\n"
    no_special_files(arena["writable"], *out_dirs(target, "hostile-fs"))
    assert not [p for p in arena["writable"].iterdir() if p.is_symlink()
                and not os.path.realpath(p).startswith(str(arena["writable"]) + os.sep)]
    created = snapshot(arena["root"], target) - before
    assert {p for p in created if not p.startswith(str(arena["writable"]) + os.sep)} == set(), created


def test_the_writable_grant_is_written_and_keeps_a_link_inside(cargo: Cargo, arena: dict) -> None:
    run = build(cargo, arena, "writable-twin")
    assert run.ok, run.proc.stderr[-3000:]
    assert (arena["writable"] / "guest.txt").read_text() == "written by the guest\n"
    assert (arena["writable"] / "sh.txt").read_text() == "written by sh\n"
    assert (arena["writable"] / "alias").is_symlink()


def test_links_planted_in_the_writable_grant_are_removed(cargo: Cargo, arena: dict) -> None:
    build(cargo, arena, "plant-link")
    assert not (arena["writable"] / "leak").is_symlink() and not (arena["writable"] / "leak2").is_symlink()


def test_the_target_dir_inside_the_package_is_unreadable_but_for_out_dir(cargo: Cargo, arena: dict) -> None:
    """A granted variable named in rerun-if-env-changed is stored by cargo in target/.../.fingerprint, and
    the crate's `.d` file has its `# env-dep:` line: the next run of the script must find neither."""
    target = arena["package"] / "target"
    first = build(cargo, arena, "target-plant", {"HOSTILE_FS_SECRET": arena["token"]})
    assert first.ok, first.proc.stderr[-3000:]
    stored = [p for p in target.rglob("*") if p.is_file() and arena["token"].encode() in p.read_bytes()]
    assert any({".fingerprint", "fingerprint"} & set(p.relative_to(target).parts) for p in stored), \
        "cargo no longer stores the value: test is moot"
    assert any(p.suffix == ".d" for p in stored), "rustc wrote no env-dep line: test is moot"
    second = build(cargo, arena, "target-plant,target-read")  # the variable changed: the script reruns
    text = second.proc.stderr + second.proc.stdout
    assert "hostile-fs target-read: files read: " in text, text[-3000:]
    assert "canary found in: 0 target entries: 0" in text, text[-3000:]
    assert "sh saw the canary 0 times" in text and "hostile-fs target-read cat: exit status: 1" in text
    assert not second.ok and "filesystem-access denied: list " in text, text[-3000:]
    assert "inside the target directory, which holds other crates' build state" in text
    assert arena["token"] not in text
    assert arena["token"].encode() not in outputs_of(target)


# -- another build's target dir inside the package (red1 finding 4) ------------------------------------------

@dataclass(frozen=True)
class Stale:
    """Where another build left its target dir in the package (`dir`), and what of it is left."""

    name: str
    dir: str  # relative to the package
    profile_only: bool = False  # only `debug/` was kept (a CI cache of target/debug): no CACHEDIR.TAG


STALE = [Stale("target-ci", "target-ci"), Stale("dot-target", ".target"),
         Stale("build-cargo-target", "build/cargo-target"),
         Stale("ci-cache-profile-only", "ci/cache/debug", profile_only=True)]


@pytest.fixture(scope="module")
def stale_build(cargo: Cargo, arena: dict) -> Path:
    """`cargo build --target-dir target-ci` run once without cratecage with the secret set: rustc writes
    `# env-dep:HOSTILE_FS_SECRET=<token>` into the `.d` file, cargo writes CACHEDIR.TAG."""
    made = arena["package"] / "target-ci"
    cargo(arena["package"], "build", wrapped=False, target_dir=made, extra_env={"HOSTILE_FS_SECRET": arena["token"]})
    [dep] = crate_outputs(made, "hostile_fs-*.d")
    assert f"# env-dep:HOSTILE_FS_SECRET={arena['token']}" in dep.read_text(), "no env-dep line: test is moot"
    assert (made / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    return made


def stale_run(cargo: Cargo, arena: dict, where: str, dep: Path) -> tuple[CargoRun, str, set[str]]:
    """Build with `stale-read` aimed at `where` and `dep`: the run, its text, what it created outside the
    target dir."""
    package = arena["package"]
    (package / "stale.txt").write_text(f"dir={where}\nfile={dep.relative_to(package)}\n")
    before = snapshot(arena["root"], package / "target")
    run = build(cargo, arena, "stale-read")
    return run, run.proc.stderr + run.proc.stdout, snapshot(arena["root"], package / "target") - before


@pytest.mark.parametrize("stale", STALE, ids=[s.name for s in STALE])
def test_another_build_s_target_dir_in_the_package_is_unreadable_by_every_route(
        cargo: Cargo, arena: dict, stale_build: Path, stale: Stale) -> None:
    package, target = arena["package"], arena["package"] / "target"
    place = package / stale.dir
    place.parent.mkdir(parents=True, exist_ok=True)
    (stale_build / "debug" if stale.profile_only else stale_build).rename(place)
    try:
        [dep] = (crate_outputs(place.parent, "hostile_fs-*.d", profile=place.name) if stale.profile_only
                 else crate_outputs(place, "hostile_fs-*.d"))
        run, text, created = stale_run(cargo, arena, stale.dir, dep)
        assert "hostile-fs stale-read path: refused" in text, text[-3000:]
        assert "hostile-fs stale-read list: 0 files: []" in text
        assert "hostile-fs stale-read cat: exit status: 1" in text
        assert 'hostile-fs stale-read sh: exit status: 0 stdout="done\\n"' in text
        assert "hostile-fs stale-read probe: failed" in text
        assert not run.ok and "cratecage: build script of hostile-fs 0.1.0: filesystem-access denied: read " in text
        assert "inside the target directory, which holds other crates' build state" in text
        assert arena["token"] not in text
        assert arena["token"].encode() not in outputs_of(target)
        assert created == set(), created
    finally:
        place.rename(stale_build / "debug" if stale.profile_only else stale_build)
        (package / "stale.txt").unlink()


def test_a_plain_directory_with_deps_and_d_files_stays_readable(cargo: Cargo, arena: dict,
                                                               stale_build: Path) -> None:
    """The twin: the same `.d` file (its value replaced) in a directory no build made stays readable."""
    package = arena["package"]
    [dep] = crate_outputs(stale_build, "hostile_fs-*.d")
    twin = package / "notes" / "debug" / "deps" / dep.name
    twin.parent.mkdir(parents=True)
    twin.write_text(dep.read_text().replace(arena["token"], "harmless"))
    try:
        run, text, created = stale_run(cargo, arena, "notes", twin)
        assert run.ok, text[-3000:]
        seen = 'secret lines: [\\"# env-dep:HOSTILE_FS_SECRET=harmless\\"]'  # inside the list's Debug form
        [path_line] = [line for line in text.splitlines() if "hostile-fs stale-read path: " in line]
        assert path_line.endswith(' lines, secret lines: ["# env-dep:HOSTILE_FS_SECRET=harmless"]'), path_line
        assert "hostile-fs stale-read list: 1 files: " in text and seen in text, text[-3000:]
        assert "hostile-fs stale-read cat: exit status: 0" in text and "HOSTILE_FS_SECRET=harmless" in text
        assert "hostile-fs stale-read probe: compiled" in text
        assert arena["token"] not in text and created == set(), created
    finally:
        shutil.rmtree(package / "notes")
        (package / "stale.txt").unlink()


# -- metadata where no mount namespace can be made: the seccomp fallback, forced ----------------------------

SECCOMP = {"CRATECAGE_METADATA_GUARD": "seccomp"}


def test_without_a_mount_namespace_granted_programs_change_no_metadata_anywhere(cargo: Cargo, arena: dict) -> None:
    """chmod/touch/chown refused outside every grant (the attack) and in OUT_DIR too (the twin's cost:
    seccomp cannot tell the paths apart; the script's own file keeps the mode it was created with)."""
    target = arena["package"] / "target"
    run = build(cargo, arena, "chmod-outside,chmod-twin", SECCOMP)
    text = run.proc.stderr + run.proc.stdout
    assert run.ok, text[-3000:]
    for what in ("chmod-outside chmod", "chmod-outside touch", "chmod-outside chown", "chmod-twin chmod",
                 "chmod-twin touch"):
        assert f"hostile-fs {what}: exit status: 1" in text, text[-3000:]
    assert 'hostile-fs chmod-twin stat: exit status: 0 stdout="644 ' in text
    st = arena["outside"].stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_mtime == 1_600_000_000 and st.st_uid == os.getuid()
    no_special_files(*out_dirs(target, "hostile-fs"))


def test_without_a_mount_namespace_libz_sys_still_builds_its_bundled_zlib(cargo: Cargo,
                                                                          tmp_path_factory) -> None:
    """cc, ar and the linker set their outputs' modes at creation: the fallback breaks none of them."""
    package = tmp_path_factory.mktemp("zlib-seccomp") / "zlib-demo"
    shutil.copytree(FIXTURES / "zlib-demo", package)
    (package / "cratecage.toml").write_text(
        '[permissions.build.libz-sys]\nprocess-spawn = { action = "permit", programs = ["cc", "ar"] }\n')
    run = cargo(package, "run", "--locked", "--features", "static", wrapped=True, target_dir=package / "target",
                extra_env=SECCOMP)
    assert run.proc.stdout.startswith("zlib "), run.proc.stdout + run.proc.stderr[-3000:]
