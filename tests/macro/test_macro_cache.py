"""A clean build reuses the wasm compiles of registry crates (shim.compile.shared_cache), wherever it is:
through real cargo and the real wrapper, a workspace using thiserror (thiserror-impl, syn from crates.io), rustversion and
a proc macro of its own (a path crate, also on syn) is built, then a copy of it elsewhere into another target
directory: the second build copies syn's replay and thiserror-impl's guest from the cache instead of
compiling them, never its own macro crate, the program's output (both macros' expansions at work) is the
same, and the trampoline's `.d` names existing files (the kept guest's sources, restored with the second
build's directories). rustversion's guest, which reads its OUT_DIR's path (`env!`), is kept bound to the
target directory it was built in: copied into a rebuild there only. A cached guest whose bytes were changed
is not used: the next build compiles it again and the entry is whole afterwards.

The cache directory is the test's own (CRATECAGE_CACHE_DIR), holding links to the user's per-toolchain
entries (facade, proc_macro crate, compiled modules) so that nothing is built for the toolchain again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.cargo.depinfo import read_dep_info
from shim.compile import shared_cache
from shim.files import cache_root

from conftest import Cargo

OWN_DERIVE = """use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, DeriveInput};

#[proc_macro_derive(Named)]
pub fn named(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let text = name.to_string();
    quote! { impl #name { pub fn name() -> &'static str { #text } } }.into()
}
"""

MAIN = """use own_derive::Named;

#[derive(Debug, thiserror::Error, Named)]
enum Failure {
    #[error("job {job} failed {times} times")]
    Failed { job: String, times: u32 },
}

#[rustversion::since(1.31)]
fn modern() -> bool {
    true
}

fn main() {
    assert!(modern());
    let failure = Failure::Failed { job: "build".into(), times: 3 };
    println!("{} says: {failure}", Failure::name());
}
"""
EXPECTED = "Failure says: job build failed 3 times\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, toolchain_env: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("macro-cache")
    write(root / "Cargo.toml", '[workspace]\nmembers = ["app", "own-derive"]\nresolver = "2"\n')
    write(root / "own-derive" / "Cargo.toml", '[package]\nname = "own-derive"\nversion = "0.1.0"\nedition = "2021"\n'
          '\n[lib]\nproc-macro = true\n\n[dependencies]\nsyn = "2"\nquote = "1"\n')
    write(root / "own-derive" / "src" / "lib.rs", OWN_DERIVE)
    write(root / "app" / "Cargo.toml", '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
          '[dependencies]\nthiserror = "2"\nrustversion = "1"\nown-derive = { path = "../own-derive" }\n')
    write(root / "app" / "src" / "main.rs", MAIN)
    env = {**os.environ, **toolchain_env}
    subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=root, env=env, check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory of the test's own but for what is built once per toolchain (links to the user's)."""
    own = tmp_path_factory.mktemp("cache")
    user = cache_root(os.environ)
    for entry in user.iterdir() if user.is_dir() else ():
        if entry.name != shared_cache.DIR:
            (own / entry.name).symlink_to(entry)
    return own


def events(run, kind: str) -> list[str]:  # noqa: ANN001
    return [e["crate"] for e in run.trace if e["kind"] == kind]


def build(selected_cargo: Cargo, workspace: Path, cache: Path, target: Path):  # noqa: ANN201
    shutil.rmtree(target, ignore_errors=True)
    run = selected_cargo(workspace, "run", "--offline", "-q", "-p", "app", wrapped=True, target_dir=target,
                         extra_env={"CRATECAGE_CACHE_DIR": str(cache)})
    assert run.proc.stdout == EXPECTED
    return run


def test_a_clean_build_elsewhere_copies_registry_wasm_compiles_and_compiles_its_own_macro_crate(
        selected_cargo: Cargo, workspace: Path, cache: Path, tmp_path: Path) -> None:
    first = build(selected_cargo, workspace, cache, workspace / "target-wrapped")
    assert "syn" in events(first, "replay")
    assert not events(first, "replay-kept") and not events(first, "macro-guest-kept")

    # another checkout, its target directory outside it and named otherwise
    elsewhere = tmp_path / "checkout-two"
    shutil.copytree(workspace, elsewhere, ignore=shutil.ignore_patterns("target*"))
    target = tmp_path / "build-two" / "out"
    second = build(selected_cargo, elsewhere, cache, target)
    assert "syn" not in events(second, "replay") and "syn" in events(second, "replay-kept")
    # never own-derive, a path crate; nor rustversion, whose guest read its OUT_DIR's path (`env!`): bound to
    # the first target directory
    assert events(second, "macro-guest-kept") == ["thiserror-impl"]
    assert sorted(events(second, "macro-guest")) == ["own-derive", "rustversion", "thiserror-impl"]
    # the copied guest's sources, restored with this build's directories, are the trampoline's `.d`
    [dep_info] = [d for d in target.rglob("thiserror_impl-*.d") if "cratecage" not in d.relative_to(target).parts]
    sources, _env = read_dep_info(dep_info)
    assert sources and all(os.path.isfile(s) for s in sources)

    # A changed cached module: compiled again, never copied; the entry is replaced by a whole one.
    [module] = [p for p in (cache / shared_cache.DIR).glob("*/*/thiserror_impl-*.wasm")]
    module.write_bytes(module.read_bytes()[:-16] + b"\0" * 16)
    third = build(selected_cargo, elsewhere, cache, target)
    assert "thiserror-impl" not in events(third, "macro-guest-kept")
    assert "thiserror-impl" in events(third, "macro-guest")
    assert "rustversion" in events(third, "macro-guest-kept")  # bound to this target directory: kept here
    [module] = [p for p in (cache / shared_cache.DIR).glob("*/*/thiserror_impl-*.wasm")]
    where = module.parent
    assert shared_cache.fetch(str(cache), where.name, str(tmp_path / "fetched")) is not None
