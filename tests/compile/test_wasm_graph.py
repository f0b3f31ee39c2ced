"""The graph logic of replays for wasm32-wasip1 (shim.compile.wasm_graph, shim.compile.script_rerun): which `--extern`s a
library keeps, drops and gains on wasm, the command line of a library cargo never compiled, the environment
of a build script run again for wasm, and the failures that stop a replay, each naming the crate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shim.cargo import journal
from shim.compile import script_rerun, wasm_graph
from shim.compile.argv import ReplayError
from shim.compile.replay import Replayer
from shim.compile.wasm_rustc import Tools

REG = "/reg"


def node(name: str, version: str, deps: list[tuple[str, str, str | None]] = (), *, features: list[str] = (),
         build: bool = False, kind: str = "lib", edition: str = "2018") -> tuple[dict, dict]:
    """(package, resolve node) of a metadata document; deps: (extern name, package name, dep kind)."""
    pid = f"{name} {version}"
    targets = [{"name": name, "kind": [kind], "crate_types": [kind], "src_path": f"{REG}/{name}-{version}/src/lib.rs",
                "edition": edition}]
    if build:
        targets.append({"name": "build-script-build", "kind": ["custom-build"], "src_path": "build.rs"})
    package = {"id": pid, "name": name, "version": version, "manifest_path": f"{REG}/{name}-{version}/Cargo.toml",
               "targets": targets, "authors": ["A", "B"], "description": "d", "license": "MIT", "source": "registry"}
    resolve = {"id": pid, "features": list(features),
               "deps": [{"name": ext, "pkg": dep, "dep_kinds": [{"kind": k, "target": None}]} for ext, dep, k in deps]}
    return package, resolve


def metadata(*nodes: tuple[dict, dict]) -> dict:
    return {"packages": [p for p, _ in nodes], "resolve": {"nodes": [n for _, n in nodes]}}


GETRANDOM = metadata(
    node("getrandom", "0.2.17", [("cfg_if", "cfg-if 1.0.0", None), ("wasi", "wasi 0.11.1+wasi-snapshot-preview1", None),
                                 ("tempdir", "tempdir 0.1.0", "dev")], features=["std"]),
    node("cfg-if", "1.0.0"),
    node("wasi", "0.11.1+wasi-snapshot-preview1"),
    node("tempdir", "0.1.0"),
)


def test_the_graph_keeps_normal_dependencies_by_extern_name_and_manifest_dir() -> None:
    graph = wasm_graph.from_metadata(GETRANDOM)
    getrandom = graph[f"{REG}/getrandom-0.2.17"]
    assert getrandom.deps == (("cfg_if", f"{REG}/cfg-if-1.0.0"), ("wasi", f"{REG}/wasi-0.11.1+wasi-snapshot-preview1"))
    assert getrandom.lib_name == "getrandom" and getrandom.features == ("std",) and not getrandom.build_script
    assert graph[f"{REG}/cfg-if-1.0.0"].lib_name == "cfg_if"


@pytest.mark.parametrize(("host", "wasm", "drop", "add"), [
    ([("cfg_if", "/t/libcfg_if.rlib"), ("libc", "/t/liblibc.rlib")], [("cfg_if", "/c"), ("wasi", "/w")],
     ("libc",), (("wasi", "/w"),)),                                     # getrandom 0.2
    ([("bitflags", "/t/a.rlib"), ("linux_raw_sys", "/t/b.rlib")], [("bitflags", "/b"), ("libc", "/l"),
                                                                   ("libc_errno", "/e")],
     ("linux_raw_sys",), (("libc", "/l"), ("libc_errno", "/e"))),       # rustix, errno renamed
    ([("a", "/t/a.rlib"), ("proc_macro", None)], [("a", "/a")], (), ()),  # the compiler's own: kept
])
def test_a_plan_drops_host_only_externs_and_adds_wasm_only_dependencies(host, wasm, drop, add) -> None:
    plan = wasm_graph.plan(host, wasm)
    assert (plan.drop, plan.add, plan.agrees) == (drop, add, not drop and not add)


def zerocopy(features: list[str]) -> wasm_graph.Package:
    """zerocopy 0.8 as the compat corpus resolves it: `derive` on for one user, so the resolve links
    zerocopy-derive (declared optional, and again under the never-true `cfg(any())`)."""
    package, resolve = node("zerocopy", "0.8.64", [("zerocopy_derive", "zerocopy-derive 0.8.64", None)],
                            features=features)
    package["features"] = {"derive": ["zerocopy-derive"], "zerocopy-derive": ["dep:zerocopy-derive"],
                           "std": ["alloc"], "alloc": []}
    package["dependencies"] = [
        {"name": "zerocopy-derive", "rename": None, "optional": True, "uses_default_features": True,
         "features": [], "kind": None, "target": None},
        {"name": "zerocopy-derive", "rename": None, "optional": False, "uses_default_features": True,
         "features": [], "kind": None, "target": "cfg(any())"},
    ]
    derive = node("zerocopy-derive", "0.8.64", kind="proc-macro")
    return wasm_graph.from_metadata(metadata((package, resolve), derive))[f"{REG}/zerocopy-0.8.64"]


@pytest.mark.parametrize(("enabled", "linked"), [
    (set(), []),                                    # the build-dependency cargo compiled: no derive
    ({"derive", "zerocopy-derive"}, ["zerocopy_derive"]),
])
def test_an_optional_dependency_is_linked_only_where_the_compiles_features_turn_it_on(enabled, linked) -> None:
    pkg = zerocopy(["derive", "zerocopy-derive", "std", "alloc"])
    assert [ext for ext, _ in wasm_graph.wasm_deps(pkg, enabled)] == linked


def test_a_dependency_gets_the_features_its_dependent_asks_for() -> None:
    package, resolve = node("errno", "0.3.15", [("libc", "libc 0.2.191", None)], features=["std"])
    package["features"] = {"default": ["std"], "std": ["libc/std"]}
    package["dependencies"] = [{"name": "libc", "rename": None, "optional": False, "uses_default_features": False,
                                "features": [], "kind": None, "target": 'cfg(target_os = "wasi")'}]
    errno = wasm_graph.from_metadata(metadata((package, resolve), node("libc", "0.2.191")))[f"{REG}/errno-0.3.15"]
    assert wasm_graph.close_features(errno, {"default"}) == {"default", "std"}
    assert wasm_graph.dep_features(errno, {"default", "std"}, "libc") == {"std"}
    assert wasm_graph.dep_features(errno, set(), "libc") == set()  # default-features = false
    assert wasm_graph.enabled_features(["--cfg", 'feature="std"', "--cfg", "unix"]) == {"std"}


def test_dropping_externs_leaves_every_other_word() -> None:
    argv = ["--crate-name", "x", "--extern", "libc=/t/liblibc.rlib", "--extern", "cfg_if=/t/c.rlib",
            "--extern=priv:libc=/t/liblibc.rmeta", "src/lib.rs"]
    assert wasm_graph.without_externs(argv, ["libc"]) == ["--crate-name", "x", "--extern", "cfg_if=/t/c.rlib",
                                                          "src/lib.rs"]


def test_cfgs_printed_for_the_host_are_replaced_by_those_printed_for_wasm() -> None:
    argv = ["--cfg", 'feature="std"', "--cfg", "linux_raw", "--cfg", "linux_like", "--cfg", "static_assertions"]
    out = wasm_graph.replace_cfgs(argv, ["linux_raw", "linux_like", "static_assertions", 'feature="std"'],
                                  ["libc", "static_assertions"])
    assert out == ["--cfg", 'feature="std"', "--cfg", "libc", "--cfg", "static_assertions"]


def test_a_library_cargo_never_compiled_gets_cargos_command_line() -> None:
    wasi = wasm_graph.from_metadata(GETRANDOM)[f"{REG}/wasi-0.11.1+wasi-snapshot-preview1"]
    name, argv = wasm_graph.synth_argv(wasi, [], [("dep", "/w/libdep-1.rlib")], "/w")
    assert name.startswith("libwasi-") and name.endswith(".rlib")
    assert argv[:4] == ["--crate-name", "wasi", "--edition=2018", wasi.src_path]
    assert ["--extern", "dep=/w/libdep-1.rlib"] == argv[argv.index("--extern"):argv.index("--extern") + 2]
    assert f"extra-filename={name[len('libwasi'):-len('.rlib')]}" in argv
    other, featured_argv = wasm_graph.synth_argv(wasi, ["std"], [], "/w")
    assert other != name and 'feature="std"' in featured_argv  # another feature set, another rlib
    env = wasm_graph.synth_env(wasi, "/bin/cargo")
    assert (env["CARGO_PKG_VERSION_MAJOR"], env["CARGO_PKG_VERSION_MINOR"], env["CARGO_PKG_VERSION_PATCH"],
            env["CARGO_PKG_VERSION_PRE"]) == ("0", "11", "1", "")
    assert env["CARGO_PKG_AUTHORS"] == "A:B" and env["CARGO_CRATE_NAME"] == "wasi" and env["CARGO"] == "/bin/cargo"


def test_the_cache_is_read_again_only_while_cargo_lock_and_local_manifests_are_unchanged(tmp_path: Path) -> None:
    lock = tmp_path / "Cargo.lock"
    lock.write_text("v1")
    graph = wasm_graph.from_metadata(GETRANDOM)
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps({"format": wasm_graph.FORMAT, "inputs": {str(lock): wasm_graph._digest(str(lock))},
                                 "graph": [wasm_graph._as_row(p) for p in graph.values()]}))
    assert wasm_graph._read_cache(str(cache)) == graph
    lock.write_text("v2")
    assert wasm_graph._read_cache(str(cache)) is None


def test_a_build_script_run_again_for_wasm_sees_the_wasm_target() -> None:
    cfgs = script_rerun.target_cfg_env(['target_os="wasi"', 'target_family="wasm"', 'target_feature="bulk-memory"',
                                        'target_feature="sign-ext"', "debug_assertions", 'panic="abort"'])
    assert cfgs["CARGO_CFG_TARGET_FEATURE"] == "bulk-memory,sign-ext" and "CARGO_CFG_DEBUG_ASSERTIONS" not in cfgs
    recorded = {"TARGET": "x86_64-unknown-linux-gnu", "CARGO_CFG_TARGET_OS": "linux", "CARGO_CFG_UNIX": "",
                "CARGO_CFG_DEBUG_ASSERTIONS": "", "CARGO_PKG_NAME": "rustix", "OUT_DIR": "/host/out",
                "RUSTC_LINKER": "cc", "HOST": "x86_64-unknown-linux-gnu", "CARGO_MAKEFLAGS": "-j --jobserver-fds=3,4"}
    host = {"PATH": "/bin", "CARGO_PKG_NAME": "consumer", "CARGO_MANIFEST_DIR": "/consumer", "TARGET": "stale"}
    env = script_rerun.wasm_env(recorded, host, cfgs, "/wasm/out")
    assert env["TARGET"] == "wasm32-wasip1" and env["HOST"] == "x86_64-unknown-linux-gnu"
    assert env["CARGO_CFG_TARGET_OS"] == "wasi" and "CARGO_CFG_UNIX" not in env and "RUSTC_LINKER" not in env
    assert env["CARGO_PKG_NAME"] == "rustix" and "CARGO_MANIFEST_DIR" not in env  # never the consumer's
    assert env["OUT_DIR"] == "/wasm/out" and env["PATH"] == "/bin" and "CARGO_CFG_DEBUG_ASSERTIONS" in env
    assert "CARGO_MAKEFLAGS" not in env  # the host run's jobserver fds are gone


@pytest.mark.parametrize(("out_dir", "unit"), [
    ("/t/debug/build/rustix-0123abcd/out", "rustix-0123abcd"),               # old layout
    ("/t/debug/build/rustix/0123abcd/out", "rustix-0123abcd"),               # new layout
])
def test_a_run_is_recorded_per_unit_in_both_layouts(out_dir: str, unit: str) -> None:
    assert script_rerun.run_unit(out_dir) == unit
    assert script_rerun.record_path(out_dir).endswith(f"/cratecage/runs/{unit}.json")


def test_the_journal_finds_a_packages_host_compile(tmp_path: Path) -> None:
    from shim.cargo.rustc_args import parse

    deps = tmp_path / "debug" / "deps"
    deps.mkdir(parents=True)
    (tmp_path / "debug" / ".cargo-lock").write_text("")
    argv = ["--crate-name", "libc", "src/lib.rs", "-C", "extra-filename=-1234", "--out-dir", str(deps)]
    journal.record(parse(argv), argv, "/reg/libc-0.2.191", {"CARGO_MANIFEST_DIR": "/reg/libc-0.2.191"})
    found = journal.find(str(tmp_path / "cratecage" / journal.JOURNAL_DIR), "/reg/libc-0.2.191")
    assert found == str(deps / "liblibc-1234.rlib")
    assert journal.find(str(tmp_path / "cratecage" / journal.JOURNAL_DIR), "/reg/other") is None


def replayer(tmp_path: Path, meta: dict) -> Replayer:
    tools = Tools(rustc="/nonexistent/rustc", sysroot="/s", wasm_sysroot="/s", facade_dir="/f", host="x")
    r = Replayer(tools=tools, facade="/f/libstd.rlib", cratecage_dir=str(tmp_path / "cratecage"), environ={},
                 consumer="app 0.1.0", workspace_dir=str(tmp_path))
    r._graph = wasm_graph.from_metadata(meta)
    return r


@pytest.mark.parametrize(("extra", "said"), [
    ({"build": True, "deps": [("cc", "cc 1.0.0", "build")]},
     "build script of wasi 0.11.1, a dependency on wasm32-wasip1 only (of the build script of app 0.1.0): it "
     "has build-dependencies of its own and cargo never built it for the host"),
    ({"kind": "proc-macro"}, "build script of app 0.1.0: its build-dependencies need wasi 0.11.1 on wasm32-wasip1 "
                             "only, a proc-macro that cargo never compiled"),
])
def test_a_wasm_only_dependency_that_cannot_be_compiled_fails_naming_it(tmp_path: Path, extra: dict, said: str) -> None:
    r = replayer(tmp_path, metadata(node("wasi", "0.11.1", **extra), node("cc", "1.0.0")))
    with pytest.raises(ReplayError) as err:
        r._from_source(r.graph(), f"{REG}/wasi-0.11.1", (), set())
    assert err.value.render().startswith(f"cratecage: {said}")
    assert "\n" not in err.value.message


def test_a_library_whose_host_run_left_no_record_fails_naming_it(tmp_path: Path) -> None:
    r = replayer(tmp_path, metadata(node("rustix", "1.1.6", build=True)))
    out_dir = tmp_path / "debug" / "build" / "rustix-0123" / "out"
    entry = journal.Entry(str(tmp_path), [], b"", {"OUT_DIR": str(out_dir)})
    with pytest.raises(ReplayError) as err:
        script_rerun.on_wasm(r, entry, r.graph()[f"{REG}/rustix-1.1.6"])
    assert err.value.message.startswith("build-dependency rustix 1.1.6 (of the build script of app 0.1.0): ")
    assert err.value.hint == "run `cargo clean -p rustix` once and build again"
    assert not os.path.exists(out_dir)


# -- `cargo metadata` runs nothing a crate chose and stays offline where the build is (red team, issue 11) --

def test_cargo_metadata_runs_no_rustc_wrapper_of_a_config_file(tmp_path: Path, toolchain_env: dict[str, str]) -> None:
    """A `.cargo/config.toml` naming a rustc-wrapper (a registry crate can ship one in its package) is never
    run by the graph's `cargo metadata`; the harmless twin is the same package read with no config."""
    marker = tmp_path / "wrapper-ran"
    for name, hostile in (("twin", False), ("hostile", True)):
        package = tmp_path / name
        (package / "src").mkdir(parents=True)
        (package / "src" / "lib.rs").write_text("")
        (package / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n')
        (package / "Cargo.lock").write_text(f'version = 4\n\n[[package]]\nname = "{name}"\nversion = "0.1.0"\n')
        if hostile:
            wrapper = tmp_path / "wrapper.sh"
            wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "$@"\n')
            wrapper.chmod(0o755)
            (package / ".cargo").mkdir()
            (package / ".cargo" / "config.toml").write_text(f'[build]\nrustc-wrapper = "{wrapper}"\n')
        environ = {**os.environ, **toolchain_env, "RUSTC_WRAPPER": "/nonexistent/cratecage", "CARGO_NET_OFFLINE": "1"}
        meta = wasm_graph._metadata(str(package), cargo=toolchain_env["CARGO"], rustc=toolchain_env["RUSTC"],
                                    environ=environ)
        assert [p["name"] for p in meta["packages"]] == [name]
    assert not marker.exists()


def test_an_unknown_workspace_fails_closed_before_cargo_metadata_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the compile's cwd (a registry crate's own directory, its config and graph) in its place."""
    import shim.cargo.workspace

    ran: list[str] = []
    monkeypatch.setattr(shim.cargo.workspace, "workspace_root_if_known", lambda environ: None)
    monkeypatch.setattr(wasm_graph, "_metadata", lambda d, **kw: ran.append(d) or {})
    monkeypatch.chdir(tmp_path)
    r = replayer(tmp_path, metadata())
    r.workspace_dir, r._graph = None, None
    with pytest.raises(ReplayError) as err:
        r.graph()
    assert err.value.message.startswith("build script of app 0.1.0: cratecage cannot tell which workspace")
    assert "CRATECAGE_WORKSPACE_ROOT" in err.value.render()
    assert ran == []


@pytest.mark.parametrize(("argv", "offline"), [
    (["build", "--offline"], True), (["--frozen", "build"], True), (["build", "--config", "net.offline = true"], True),
    (["build", "--config=net.offline=true"], True), (["build", "--locked"], False),
    (["run", "--", "--offline"], False), (["build", "--config", "net.offline=false"], False),
])
def test_a_cargo_told_to_stay_offline_is_recognised(argv: list[str], offline: bool) -> None:
    from shim.cargo.workspace import argv_offline

    assert argv_offline(argv) is offline


def test_the_graph_goes_online_only_where_the_build_may(monkeypatch: pytest.MonkeyPatch) -> None:
    """cargo tells rustc nothing of `cargo build --offline`: the online retry asks the cargo processes."""
    import subprocess

    import shim.cargo.workspace

    runs: list[list[str]] = []

    def failing(cmd, **kw):
        runs.append(cmd)
        return subprocess.CompletedProcess(cmd, 101, b"", b"error: no matching package named `wasi` found\n")

    monkeypatch.setattr(wasm_graph.subprocess, "run", failing)
    for offline in (True, False):
        runs.clear()
        monkeypatch.setattr(shim.cargo.workspace, "offline_requested", lambda environ, pid=None: offline)
        with pytest.raises(wasm_graph.GraphError):
            wasm_graph._metadata("/w", cargo="cargo", rustc="rustc", environ={})
        assert ["--offline" in cmd for cmd in runs] == ([True] if offline else [True, False])
