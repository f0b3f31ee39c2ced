"""What the wasm compiles may read and write of cargo's target directories (issue 9; red2 findings 2-4, red1
finding 4): a build script's compile reads no other crate's wasm dep-info or rlib (by predicted name, by a
relative or symlinked route, or by listing what its arguments name), a grant of a directory holding the
target dir shows none of it, a stale second target dir in the package is hidden too, and a proc macro
inside a compile can neither overwrite a shared wasm rlib nor get a replaced one linked
(fixtures/target-reads; since issue 13 the macro runs in the macro sandbox, where it sees no file at all). The canary is the value of two variables: one granted to `victim` (its wasm
compile read it), one read by `nat`'s native compile; it reaches no output and no file cratecage writes."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun
from target_dirs import crate_outputs, fingerprint_files

pytestmark = pytest.mark.integration

DENIED = "cratecage: build script of target-reads 0.1.0: filesystem-access denied: "
TARGET_REASON = "inside cargo's target directory"
VICTIM_GRANT = '[permissions.build.victim]\nenv-access = { action = "permit", vars = ["VICTIM_TOKEN"] }\n'
ROOT_GRANT = '[permissions.build.target-reads]\nfilesystem-access = {{ action = "permit", paths = ["{root}"] }}\n'
STALE_NAMES = ("target", "target-ci")


@dataclass(frozen=True)
class Case:
    feature: str
    granted_root: bool  # the script is granted the arena root, which holds the target dir
    ok: bool
    expect: tuple[str, ...]


REFUSED = (DENIED, TARGET_REASON)
CASES = [
    Case("d-predicted", False, False, REFUSED),
    Case("d-relative", False, False, REFUSED),
    Case("rlib-predicted", False, False, REFUSED),
    Case("symlink-route", False, False, REFUSED),
    # pm runs as wasm in the macro sandbox since issue 13: it sees neither rustc's arguments nor any file, so
    # it finds no directory to list and believes it is in no wasm compile ("native")
    Case("list-deps", False, True, ("victim len",)),
    Case("pm-tamper", False, True, ("loot native",)),
    Case("twin-package", False, True, ("loot harmless data inside the package",)),
    Case("gr-native-d", True, False, REFUSED),
    Case("gr-fingerprint", True, False, REFUSED),
    Case("gr-journal", True, False, REFUSED),
    Case("d-predicted", True, False, REFUSED),
    Case("twin-granted", True, True, ("loot granted data beside the target dir",)),
]


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory, cargo: Cargo) -> dict:
    """The packages under `<root>/src`, a granted file beside them, stale target dirs inside the package
    (built natively, with the canary in the environment), and a first wrapped build to learn names from."""
    root = tmp_path_factory.mktemp(f"target-reads-{cargo.layout}")
    shutil.copytree(FIXTURES / "target-reads", root / "src")
    app = root / "src" / "app"
    token = "CANARY" + secrets.token_hex(10)
    (root / "granted").mkdir()
    (root / "granted" / "x.txt").write_text("granted data beside the target dir\n")
    arena = {"root": root, "app": app, "token": token, "template": (app / "build.rs").read_text()}
    for name in STALE_NAMES:
        cargo(app, "build", wrapped=False, target_dir=app / name, extra_env=env(arena))
    return arena


def env(arena: dict) -> dict[str, str]:
    return {"VICTIM_TOKEN": arena["token"], "SECRET_TOKEN_X": arena["token"]}


def build(cargo: Cargo, arena: dict, target: Path, feature: str | None, *, granted_root: bool,
          fill: dict[str, str] | None = None, check: bool = False) -> CargoRun:
    policy = VICTIM_GRANT + (ROOT_GRANT.format(root=arena["root"]) if granted_root else "")
    (arena["app"] / "cratecage.toml").write_text(policy)
    text = arena["template"]
    for key, value in (fill or {}).items():
        text = text.replace(f"@{key}@", value)
    build_rs = arena["app"] / "build.rs"
    if build_rs.read_text() != text:
        build_rs.write_text(text)
    args = ["build", "--features", feature] if feature else ["build"]
    return cargo(arena["app"], *args, wrapped=True, target_dir=target, extra_env=env(arena), check=check)


def one(pattern: str, base: Path | list[Path]) -> Path:
    found = sorted(base.glob(pattern)) if isinstance(base, Path) else base
    assert len(found) == 1, (pattern, found)
    return found[0]


def names(arena: dict, target: Path) -> dict[str, str]:
    """The placeholders of build.rs: paths a hostile script predicts (the hashes are the same on every
    machine), learned here from a first build."""
    wasm_deps = target / "cratecage" / "wasm-deps"
    rlib = one("libvictim-*.rlib", wasm_deps)
    extra = rlib.name[len("libvictim"):-len(".rlib")]
    victim_d = wasm_deps / f"victim{extra}.d"  # where cratecage < 0.6 kept it, with the value
    nat_d = one("nat-*.d", crate_outputs(target, "nat-*.d"))
    link = arena["app"] / "tlink"
    if not link.is_symlink():
        link.symlink_to(target)
    return {
        "VICTIM_D": str(victim_d), "VICTIM_D_REL": os.path.relpath(victim_d, arena["app"]),
        "VICTIM_RLIB": str(rlib), "NAT_D": str(nat_d),
        "FINGERPRINT": str(one("dep-lib-victim", fingerprint_files(target, "victim", "dep-lib-victim"))),
        "JOURNAL": str(one("cratecage/journal/libvictim-*.rlib*", target)),
        "SYMLINK_D": os.path.join("tlink", os.path.relpath(nat_d, target)),
        "GRANTED": str(arena["root"] / "granted" / "x.txt"),
    }


def tree(root: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if skip not in p.parents and p != skip and p.name != "Cargo.lock"}


def cratecage_files_with(token: str, target: Path) -> list[Path]:
    """Files cratecage wrote holding the canary. Cargo's own native .d and fingerprints hold it by design,
    and so do victim's own wasm rlib and rmeta: what a crate read under its grant is in its outputs, which
    only the compiles that link it read."""
    return [p for p in (target / "cratecage").rglob("*")
            if p.is_file() and not p.is_symlink() and not (p.parent.name == "wasm-deps" and p.name.startswith("libvictim-"))
            and token.encode() in p.read_bytes()]


def digests(target: Path) -> dict[str, str]:
    wasm_deps = target / "cratecage" / "wasm-deps"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(wasm_deps.iterdir()) if p.is_file()}


def check_clean(run: CargoRun, arena: dict, target: Path) -> None:
    token = arena["token"]
    out = run.proc.stderr + run.proc.stdout
    assert "Traceback" not in out and "internal error" not in out, out[-3000:]
    assert token not in out, out[-3000:]
    assert cratecage_files_with(token, target) == []
    assert [p for p in (target / "cratecage").rglob("*.d")] == []  # no dep-info kept: it holds values


@pytest.mark.parametrize("case", CASES, ids=[f"{c.feature}{'-granted' if c.granted_root else ''}" for c in CASES])
def test_a_compile_reads_nothing_of_the_target_dir(cargo: Cargo, arena: dict, case: Case) -> None:
    target = arena["root"] / "target-granted" if case.granted_root else arena["root"].parent / f"{arena['root'].name}-t"
    build(cargo, arena, target, None, granted_root=case.granted_root, check=True)
    fill = names(arena, target)
    before, rlibs = tree(arena["root"], target), digests(target)
    run = build(cargo, arena, target, case.feature, granted_root=case.granted_root, fill=fill)
    stderr = run.proc.stderr
    assert run.ok == case.ok, stderr[-4000:]
    for text in case.expect:
        assert text in stderr, stderr[-4000:]
    if run.ok:  # victim is linked as it was built: its length, never its value; pm saw nothing in hlib's replay
        assert f"victim len {len(arena['token'])} hlib native" in stderr, stderr[-4000:]
    assert "WRITTEN" not in stderr and "env-dep:" not in stderr and "loot dir" not in stderr
    check_clean(run, arena, target)
    assert tree(arena["root"], target) == before  # nothing created outside the target dir
    assert {k: v for k, v in digests(target).items() if k in rlibs} == rlibs  # no shared rlib touched
    assert not list(target.rglob("libvictim-planted*")) and not list(target.rglob("trojan.tmp"))


@pytest.mark.parametrize("stale", STALE_NAMES)
def test_a_stale_target_dir_in_the_package_is_hidden(cargo: Cargo, arena: dict, stale: str) -> None:
    """red1 finding 4: a second target dir inside the package (`--target-dir target-ci`, or `target` while
    CARGO_TARGET_DIR points elsewhere) holds native `.d` files with the values of the variables read."""
    target = arena["root"].parent / f"{arena['root'].name}-stale"
    build(cargo, arena, target, None, granted_root=False, check=True)
    stale_d = one("nat-*.d", crate_outputs(arena["app"] / stale, "nat-*.d"))
    assert arena["token"] in stale_d.read_text()  # the loot is there
    before = tree(arena["root"], target)
    run = build(cargo, arena, target, "stale-d", granted_root=False,
                fill={"STALE_D": os.path.relpath(stale_d, arena["app"])})
    assert not run.ok
    assert DENIED in run.proc.stderr and TARGET_REASON in run.proc.stderr, run.proc.stderr[-4000:]
    check_clean(run, arena, target)
    assert tree(arena["root"], target) == before


def test_a_replaced_wasm_rlib_is_compiled_again_never_linked(cargo: Cargo, arena: dict) -> None:
    """Whatever replaces a published rlib (a native proc macro, a process left behind) fails its sha256:
    the next build script that needs it replays it again."""
    target = arena["root"].parent / f"{arena['root'].name}-replaced"
    build(cargo, arena, target, None, granted_root=False, check=True)
    rlib = one("cratecage/wasm-deps/libvictim-*.rlib", target)
    good = rlib.read_bytes()
    rlib.write_bytes(b"TROJAN")
    run = build(cargo, arena, target, "twin-package", granted_root=False, check=True)
    assert "victim" in run.replays()
    assert rlib.read_bytes() == good
    assert f"victim len {len(arena['token'])} " in run.proc.stderr
    check_clean(run, arena, target)


UNTAGGED_SCRIPT = r'''
use std::{env, fs, path::Path};
fn main() {
    let target = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("target");
    match fs::read_dir(&target) {
        Ok(entries) => for e in entries.flatten() { println!("cargo:warning=LISTED {}", e.file_name().to_string_lossy()); },
        Err(err) => println!("cargo:warning=LIST REFUSED {}", err.kind() as u8),
    }
    for rel in ["cratecage/audit.jsonl", "cratecage/journal"] {
        match fs::read(target.join(rel)) {
            Ok(bytes) => println!("cargo:warning=READ {rel} {}", String::from_utf8_lossy(&bytes).replace('\n', " ")),
            Err(_) => println!("cargo:warning=READ REFUSED {rel}"),
        }
    }
    if let Ok(entries) = fs::read_dir(target.join("cratecage/journal")) {
        for e in entries.flatten() {
            let text = fs::read(e.path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            println!("cargo:warning=JOURNAL {}", text.replace('\0', " "));
        }
    }
    println!("cargo:rerun-if-env-changed=PROFILE");
}
'''


def test_a_target_dir_cargo_did_not_create_is_hidden_too(cargo: Cargo, tmp_path: Path) -> None:
    """Cargo tags only a target dir it creates (a `mkdir target`, a CI cache mount point, an existing
    `--target-dir` carry no CACHEDIR.TAG, and CARGO_CACHE_RUSTC_INFO=0 leaves no .rustc_info.json): the
    journal, audit log and wasm rlibs under `target/cratecage/` hold other crates' environments, and stay
    hidden from a build script all the same (cratecage tags its own directory)."""
    token = "TOKEN" + secrets.token_hex(8)
    pkg = tmp_path / "untagged"
    (pkg / "src").mkdir(parents=True)
    (pkg / "bdep" / "src").mkdir(parents=True)
    (pkg / "bdep" / "Cargo.toml").write_text('[package]\nname = "bdep"\nversion = "0.1.0"\nedition = "2021"\n')
    (pkg / "bdep" / "src" / "lib.rs").write_text('pub const SEEN: Option<&str> = option_env!("UNTAGGED_SECRET");\n')
    (pkg / "Cargo.toml").write_text('[package]\nname = "untagged"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                    '[build-dependencies]\nbdep = { path = "bdep" }\n')
    (pkg / "build.rs").write_text('fn main() { println!("cargo:rerun-if-changed=build.rs"); }\n')  # the twin
    (pkg / "src" / "main.rs").write_text("fn main() {}\n")
    target = pkg / "target"
    target.mkdir()  # exists before cargo runs: cargo writes no CACHEDIR.TAG into it
    env = {"CARGO_CACHE_RUSTC_INFO": "0", "UNTAGGED_SECRET": token}
    cargo(pkg, "build", wrapped=True, target_dir=target, extra_env=env)  # journal, audit log, wasm rlibs now exist
    assert not (target / "CACHEDIR.TAG").exists() and (target / "cratecage" / "audit.jsonl").is_file()
    (pkg / "build.rs").write_text(UNTAGGED_SCRIPT)
    run = cargo(pkg, "build", "-vv", wrapped=True, target_dir=target, extra_env=env, check=False)
    out = run.proc.stderr + run.proc.stdout
    assert not run.ok
    assert "LIST REFUSED" in out and "READ REFUSED cratecage/audit.jsonl" in out, out[-3000:]
    assert "filesystem-access denied: list " in out and "inside the target directory" in out
    assert "LISTED" not in out and "JOURNAL" not in out and token not in out
