"""Native compiles that consume a build script's output run confined (issue 9, class A; shim.intercept.confined).

Real cargo through the real wrapper: a `rustc-env` crate and a real -sys crate (libz-sys) build and run
through the confined path with the same result as plain cargo; hostile link directives that the owner
granted (a response file, a linker script, a library in OUT_DIR that is a linker script) cannot make the
confined link read a canary outside the build; a granted search path outside the package stays readable.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.confine import landlock

from conftest import FIXTURES, Cargo, CargoRun
from target_dirs import crate_outputs

pytestmark = pytest.mark.integration
needs_landlock = pytest.mark.skipif(landlock.abi_version() < 1, reason="needs Landlock to confine the link")


def confined(run: CargoRun) -> dict[str, str]:
    """crate -> why its compile ran confined, from the trace."""
    return {e["crate"]: e["why"] for e in run.trace if e["kind"] == "confined-compile"}


def leftover_tmp(target: Path) -> list[Path]:
    return list((target / "cratecage" / "tmp").glob("native-*"))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def contains(root: Path, token: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and token in p.read_bytes()]


# -- legitimate builds -----------------------------------------------------------------------------------

def test_a_rustc_env_value_reaches_env_through_the_confined_compile(cargo: Cargo, tmp_path: Path,
                                                                       targets: Path) -> None:
    package = tmp_path / "rustc-env-demo"
    shutil.copytree(FIXTURES / "rustc-env-demo", package)
    runs = cargo.both(package, "run", "-q", targets=targets, label="rustc-env")
    plain, wrapped = runs["plain"][0], runs["wrapped"][0]
    assert wrapped.proc.stdout == plain.proc.stdout == "version 1.2.3-from-build-script\n"
    assert confined(wrapped) == {"rustc_env_demo": "build script directives"}
    assert not leftover_tmp(runs["wrapped"][1])


@pytest.fixture(scope="module")
def zlib_demo(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp(f"zlib-confined-{cargo.layout}") / "zlib-demo"
    shutil.copytree(FIXTURES / "zlib-demo", package)
    (package / "cratecage.toml").write_text(
        '[permissions.build.libz-sys]\nprocess-spawn = { action = "permit", programs = ["cc", "ar"] }\n')
    return package


def test_libz_sys_and_the_binary_that_links_it_build_confined_and_run(cargo: Cargo, zlib_demo: Path,
                                                                       targets: Path) -> None:
    """`--features static`: libz-sys compiles its bundled zlib into OUT_DIR, so libz-sys's rlib gets
    `-L native=<OUT_DIR>/lib -l static=z` and the final link `-L native=<OUT_DIR>/lib`."""
    target = targets / "zlib-confined"
    run = cargo(zlib_demo, "run", "--locked", "--features", "static", wrapped=True, target_dir=target)
    assert run.proc.stdout.startswith("zlib 1."), run.proc.stdout
    why = confined(run)
    assert why.get("libz_sys") == "search path" and why.get("zlib_demo") == "search path", why
    assert "libc" not in why  # its build script prints only cfgs: today's exec fast path
    assert not leftover_tmp(target)


# -- hostile link directives --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arena(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The hostile-link package, a canary it must never read (a line that a linker would echo back), and a
    directory outside the package with a real static library (the granted search path of the twin)."""
    root = tmp_path_factory.mktemp(f"hostile-link-{cargo.layout}")
    package = root / "pkg" / "hostile-link"
    shutil.copytree(FIXTURES / "hostile-link", package)
    token = "CANARY" + secrets.token_hex(8)
    (root / "secret").mkdir()
    canary = root / "secret" / "notes"
    canary.write_text(f"--{token}\n")
    outside = root / "outside-lib"
    outside.mkdir()
    (outside / "answer.c").write_text("int outside_answer(void) { return 42; }\n")
    subprocess.run(["cc", "-c", "-fPIC", "-o", str(outside / "answer.o"), str(outside / "answer.c")], check=True)
    subprocess.run(["ar", "crs", str(outside / "liboutside.a"), str(outside / "answer.o")], check=True)
    (package / "harmless.rsp").write_text("--as-needed\n")
    subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=package, check=True, capture_output=True)
    return {"root": root, "package": package, "canary": canary, "token": token, "outside": outside}


def build(cargo: Cargo, arena: dict, targets: Path, directives: list[str], grants: list[str],
          script: str | None = None, features: tuple[str, ...] = ()) -> tuple[CargoRun, Path, set[Path]]:
    """Write the inputs, then build; also returns what existed under the arena just before cargo ran."""
    package = arena["package"]
    (package / "directives.txt").write_text("".join(f"{d}\n" for d in directives))
    if script is None:
        (package / "script.txt").unlink(missing_ok=True)
    else:
        (package / "script.txt").write_text(script)
    listed = ", ".join(f'"{g}"' for g in grants)
    (package / "cratecage.toml").write_text(
        f'[permissions.build.hostile-link]\ndirectives = {{ action = "permit", list = [{listed}] }}\n')
    target = targets / "hostile-link"
    args = ["run", "-q", *(["--features", ",".join(features)] if features else [])]
    before = files_under(arena["root"])
    return cargo(package, *args, wrapped=True, target_dir=target, check=False), target, before


def assert_contained(arena: dict, target: Path, run: CargoRun, before: set[Path]) -> None:
    text = run.proc.stdout + run.proc.stderr
    assert arena["token"] not in text
    assert not contains(target, arena["token"].encode())
    assert files_under(arena["root"]) - before == set()  # nothing created outside the target dir
    assert not leftover_tmp(target)
    assert "Traceback" not in text


HOSTILE = {
    # ld reads a response file's words as arguments and names the first one it does not know
    "response-file": (["cargo:rustc-link-arg=-Wl,@{canary}"], ["rustc-link-arg=-Wl,@{canary}"], None),
    # ld parses a linker script given by -T and quotes what it cannot parse
    "script-option": (["cargo:rustc-link-arg=-Wl,--script={canary}"], ["rustc-link-arg=-Wl,--script={canary}"],
                      None),
    # a "library" in OUT_DIR that is a linker script naming the canary, by INPUT and by GROUP
    "lib-input": (["cargo:rustc-link-search=native=$OUT_DIR", "cargo:rustc-link-lib=static=evil"], [],
                  "INPUT({canary})\n"),
    "lib-group": (["cargo:rustc-link-search=native=$OUT_DIR", "cargo:rustc-link-lib=static=evil"], [],
                  "GROUP({canary})\n"),
}


@needs_landlock
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_granted_link_directive_cannot_make_the_link_read_outside(cargo: Cargo, arena: dict, targets: Path,
                                                                     case: str) -> None:
    directives, grants, script = HOSTILE[case]
    fill = {"canary": arena["canary"]}
    run, target, before = build(cargo, arena, targets, [d.format(**fill) for d in directives],
                        [g.format(**fill) for g in grants], script.format(**fill) if script else None)
    assert not run.ok, run.proc.stdout
    text = run.proc.stderr
    assert "could not compile `hostile-link`" in text or "cratecage:" in text, text[-3000:]
    if "could not compile `hostile-link`" in text:  # the directive reached the link: the link was confined
        assert confined(run).get("hostile_link") in ("build script directives", "search path"), run.trace
        assert "linking with `cc` failed" in text and "Permission denied" in text, text[-3000:]
    assert_contained(arena, target, run, before)


def test_the_twin_response_file_inside_the_package_links(cargo: Cargo, arena: dict, targets: Path) -> None:
    rsp = arena["package"] / "harmless.rsp"
    run, target, before = build(cargo, arena, targets, [f"cargo:rustc-link-arg=-Wl,@{rsp}"],
                                [f"rustc-link-arg=-Wl,@{rsp}"])
    assert run.ok, run.proc.stderr[-3000:]
    assert run.proc.stdout == "linked\n"
    assert confined(run) == {"hostile_link": "build script directives"}
    assert_contained(arena, target, run, before)


def test_a_granted_search_path_outside_the_package_stays_readable(cargo: Cargo, arena: dict,
                                                                   targets: Path) -> None:
    outside = arena["outside"]
    run, target, before = build(cargo, arena, targets,
                        [f"cargo:rustc-link-search=native={outside}", "cargo:rustc-link-lib=static=outside"],
                        [f"rustc-link-search={outside}", "rustc-link-lib=outside"], features=("outside",))
    assert run.ok, run.proc.stderr[-3000:]
    assert run.proc.stdout == "outside answer 42\nlinked\n"
    assert confined(run) == {"hostile_link": "search path"}
    assert_contained(arena, target, run, before)


LINGERING_LINKER = """#!/bin/sh
# A linker wrapper that leaves a detached process behind, spinning until someone kills it; its pid goes
# beside the linker's output, the directory a confined link may write (deps/, or the unit's out/), found by
# the shell itself: the confined link may not run `dirname`.
prev=; for a in "$@"; do [ "$prev" = "-o" ] && LINGER_PIDFILE="${a%/*}/linger.pid"; prev=$a; done
export LINGER_PIDFILE
sh -c 'echo $$ > "$LINGER_PIDFILE"; while :; do :; done' </dev/null >/dev/null 2>&1 &
exec cc "$@"
"""


def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("host: "))


@needs_landlock
def test_nothing_the_confined_link_starts_outlives_it(cargo: Cargo, arena: dict, targets: Path) -> None:
    tools = arena["root"] / "tools"
    tools.mkdir(exist_ok=True)
    linker = tools / "linger-cc"
    linker.write_text(LINGERING_LINKER)
    linker.chmod(0o755)
    target = targets / "hostile-link"
    for old in crate_outputs(target, "linger.pid"):
        old.unlink()
    rsp = arena["package"] / "harmless.rsp"
    (arena["package"] / "src" / "main.rs").touch()  # relink even when the last test left it fresh
    triple = host_triple().upper().replace("-", "_")
    env = {f"CARGO_TARGET_{triple}_LINKER": str(linker)}
    package = arena["package"]
    (package / "directives.txt").write_text(f"cargo:rustc-link-arg=-Wl,@{rsp}\n")
    (package / "script.txt").unlink(missing_ok=True)
    (package / "cratecage.toml").write_text(
        f'[permissions.build.hostile-link]\ndirectives = {{ action = "permit", list = ["rustc-link-arg=-Wl,@{rsp}"] }}\n')
    run = cargo(package, "run", "-q", wrapped=True, target_dir=target, extra_env=env, check=False)
    assert run.ok, run.proc.stderr[-3000:]
    assert confined(run) == {"hostile_link": "build script directives"}
    pidfiles = crate_outputs(target, "linger.pid")
    assert pidfiles, "the lingering linker did not run"
    for pidfile in pidfiles:
        pid = int(pidfile.read_text())
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue  # killed and reaped
        os.kill(pid, 9)  # do not leave it spinning on the machine
        pytest.fail(f"the linker's detached child {pid} outlived the compile (state {state})")


# -- the decision on the fast path (shim.intercept.wrapper.consumes_script_output) ----------------------------------

DECISIONS = [
    (["--crate-name", "a", "src/lib.rs", "-L", "dependency=/t/debug/deps"], None),
    (["--crate-name", "a", "src/lib.rs", "-L", "native=/t/out/lib"], "search path"),
    (["--crate-name", "a", "src/lib.rs", "-L/usr/lib/x"], "search path"),
    (["--crate-name", "a", "src/lib.rs", "-l", "static=z"], "link library"),
    (["--crate-name", "a", "src/lib.rs", "-lz"], "link library"),
    (["--crate-name", "a", "src/lib.rs", "-L", "crate=/t/debug/deps"], None),
    # a user's RUSTFLAGS link argument (a script's shows in its output file): no reason to confine
    (["--crate-name", "a", "src/lib.rs", "-C", "link-arg=-fuse-ld=mold"], None),
    (["--crate-name", "a", "src/lib.rs", "-Clink-args=-s"], None),
    (["--crate-name", "a", "src/lib.rs", "--cfg", "-lfoo"], None),  # a value, not the flag
]


@pytest.mark.parametrize(("argv", "why"), DECISIONS)
def test_the_argv_decides_whether_a_call_consumes_script_output(argv: list[str], why: str | None) -> None:
    from shim.cargo.rustc_args import parse
    from shim.intercept.wrapper import consumes_script_output

    assert consumes_script_output(parse(argv), argv, {}) == why


@pytest.mark.parametrize("layout", [("output",), ("run", "stdout")])
@pytest.mark.parametrize(("output", "why"), [
    ("cargo:rustc-cfg=x\ncargo:rerun-if-changed=build.rs\n", None),
    ("cargo:rustc-env=V=1\n", "build script directives"),
    ("cargo::rustc-link-lib=z\n", "build script directives"),
    ("cargo:rustc-flags=-l z\n", "build script directives"),
    ("cargo:rustc-link-arg=-Wl,--as-needed\n", "build script directives"),
    ("cargo::rustc-cdylib-link-arg=-s\n", "build script directives"),
])
def test_a_build_script_output_with_directives_for_rustc_makes_the_package_consume_it(
        tmp_path: Path, layout: tuple[str, ...], output: str, why: str | None) -> None:
    from shim.cargo.rustc_args import parse
    from shim.intercept.wrapper import consumes_script_output

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path.joinpath(*layout)).parent.mkdir(exist_ok=True)
    tmp_path.joinpath(*layout).write_text(output)
    argv = ["--crate-name", "a", "src/lib.rs"]
    assert consumes_script_output(parse(argv), argv, {"OUT_DIR": str(out_dir)}) == why


@pytest.mark.parametrize(("message", "path"), [
    ("couldn't read `/s/canary.txt`: Permission denied (os error 13)", "/s/canary.txt"),  # rustc 1.95
    ("permission denied when opening file `../../secret/canary_mod.rs`", "../../secret/canary_mod.rs"),  # 1.101
    ("couldn't read `a`: b`: No such file or directory (os error 2)", "a`: b"),
    ("cannot find value `secret` in this scope", None),
])
def test_rustc_s_words_for_a_file_it_could_not_open_name_the_path(message: str, path: str | None) -> None:
    from shim.confine.explain import unreadable_path

    assert unreadable_path(message) == path
