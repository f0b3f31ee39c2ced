"""The native trampoline (shim/macro/trampoline.py, shim/rust/trampoline/bridge.rs) in real cargo builds.

fixtures/trampoline's proc-macro crate `tmacros` is replaced by its trampoline through a test-only
RUSTC_WRAPPER (trampoline_wrapper.py), forwarding to a stand-in server (standin_server.py) that answers
each macro the way `tmacros` itself does natively; the same workspace built plainly gives the native
reference for diagnostics.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, own_lines

HERE = Path(__file__).resolve().parent
MACROS = [["derive", "Named", "derive_named", ["named"]], ["bang", "swap", "swap", []], ["attr", "scale", "scale", []],
          *[["bang", name, name, []] for name in ("counted", "fail_at", "spanned", "boom", "refuse", "die", "garbage",
                                                   "hostile")]]


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.workspace = root / "ws"
        shutil.copytree(FIXTURES / "trampoline", self.workspace)
        self.log = root / "server.log"
        self.wrapper = self._script("wrapper.sh", f'exec "{sys.executable}" "{HERE / "trampoline_wrapper.py"}" "$@"')
        self.launcher = self._script("server.sh", f'exec "{sys.executable}" "{HERE / "standin_server.py"}"')

    def _script(self, name: str, line: str) -> Path:
        path = self.root / name
        path.write_text(f"#!/bin/sh\n{line}\n")
        path.chmod(0o755)
        return path

    def env(self) -> dict[str, str]:
        return {"RUSTC_WRAPPER": str(self.wrapper), "TRAMPOLINE_CRATE": "tmacros", "TRAMPOLINE_MACROS": json.dumps(MACROS),
                "TRAMPOLINE_LAUNCHER": str(self.launcher), "STANDIN_LOG": str(self.log)}

    def build(self, cargo: Cargo, *args: str, native: bool = False, target: str | None = None, check: bool = True,
              launcher: Path | None = None):
        target_dir = self.root / (target or ("native" if native else "trampoline"))
        env = {**self.env(), **({"TRAMPOLINE_LAUNCHER": str(launcher)} if launcher else {})}
        return cargo(self.workspace, *args, wrapped=False, target_dir=target_dir, check=check,
                     extra_env=None if native else env)

    def servers(self) -> list[tuple[int, int, str]]:
        """(server pid, its parent's pid, macro) of every request the stand-in served so far."""
        if not self.log.exists():
            return []
        return [(int(p), int(pp), name) for p, pp, name, *_ in (line.split() for line in self.log.read_text().splitlines())]

    def call_sites(self, macro: str) -> list[tuple[int, int, str]]:
        """(line, column, source text) of the call site the trampoline described in each request for `macro`."""
        out = []
        for line in self.log.read_text().splitlines():
            _pid, _ppid, name, _count, row, column, text = line.split(" ", 6)
            if name == macro:
                out.append((int(row), int(column), json.loads(text)))
        return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return Setup(tmp_path_factory.mktemp("trampoline"))


def errors(run) -> list[dict]:
    """The error diagnostics of a `--message-format=json` build."""
    out = []
    for line in run.proc.stdout.splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("reason") == "compiler-message" and entry["message"]["level"] == "error":
            out.append(entry["message"])
    return out


def primary(message: dict) -> tuple:
    span = next(s for s in message["spans"] if s["is_primary"])
    return (message["message"], span["file_name"], span["line_start"], span["column_start"], span["line_end"],
            span["column_end"])


def test_macros_expand_to_what_the_server_returned(setup: Setup, selected_cargo: Cargo) -> None:
    run = setup.build(selected_cargo, "run", "-q", "-p", "app")
    lines = run.proc.stdout.splitlines()
    assert lines[:3] == ["name Widget", "swap 9", "scaled 21"]  # derive (with helper attributes), bang, attribute
    counted = [line.split() for line in lines[3:]]
    pids = {pid for _, pid, _ in counted}
    assert len(pids) == 1
    # the stand-in counts every request it served (natively the count is of counted! alone: 1, 2, 3)
    assert [int(n) for *_, n in counted] == [3, 4, 5]
    served = [s for s in setup.servers() if s[2] in ("Named", "scale", "counted", "swap")]
    assert {pid for pid, _, _ in served} == {int(pids.pop())}  # one server for the whole crate's rustc
    source = (setup.workspace / "app" / "src" / "main.rs").read_text().splitlines()
    row = next(i for i, text in enumerate(source, 1) if "counted!()" in text)
    columns = [i for i in range(len(source[row - 1])) if source[row - 1].startswith("counted!()", i)]
    assert setup.call_sites("counted") == [(row, column, "counted!()") for column in columns]


def test_one_server_per_rustc_process_and_none_left(setup: Setup, selected_cargo: Cargo) -> None:
    setup.build(selected_cargo, "build", "-q", "-p", "app")  # fresh: no request
    before = len(setup.servers())
    setup.build(selected_cargo, "build", "-p", "errs", "--features", "die_then_boom", check=False)
    setup.build(selected_cargo, "build", "-p", "errs", "--features", "refuse", check=False)
    new = setup.servers()[before:]
    assert [name for *_, name in new] == ["die", "boom", "refuse"]
    die, boom, refuse = new
    assert die[0] != boom[0] and die[1] == boom[1]  # restarted after dying, by the same rustc
    assert refuse[1] != boom[1] and refuse[0] not in (die[0], boom[0])  # another rustc, its own server
    for pid, _parent, _name in new:
        assert not Path(f"/proc/{pid}").exists() or "standin_server" not in Path(f"/proc/{pid}/cmdline").read_text()


@pytest.mark.parametrize("feature", ["compile_error", "spanned"])
def test_errors_point_where_the_native_macros_do(setup: Setup, selected_cargo: Cargo, feature: str) -> None:
    args = ("build", "--message-format=json", "-p", "errs", "--features", feature)
    native = errors(setup.build(selected_cargo, *args, native=True, check=False))
    ours = errors(setup.build(selected_cargo, *args, check=False))
    assert native and [primary(m) for m in ours] == [primary(m) for m in native]


def test_a_guest_panic_reads_as_a_native_macro_panic(setup: Setup, selected_cargo: Cargo) -> None:
    args = ("build", "--message-format=json", "-p", "errs", "--features", "boom")
    native = errors(setup.build(selected_cargo, *args, native=True, check=False))
    ours = errors(setup.build(selected_cargo, *args, check=False))
    assert "boom: the guest panicked" in native[0]["rendered"]
    assert [m["rendered"] for m in ours] == [m["rendered"] for m in native]


def panic_messages(run) -> list[str]:
    return [line.split("message: ", 1)[1] for line in run.proc.stderr.splitlines() if "= help: message: " in line]


def test_a_dead_server_fails_the_expansion_and_the_next_one_restarts_it(setup: Setup, selected_cargo: Cargo) -> None:
    run = setup.build(selected_cargo, "build", "-p", "errs", "--features", "die_then_boom", check=False)
    assert not run.ok
    died, boomed = panic_messages(run)
    assert died.startswith("cratecage: ") and "tmacros" in died and "`die`" in died and "cargo clean -p tmacros" in died
    assert boomed == "boom: the guest panicked"


def test_a_server_that_exits_at_once_fails_every_expansion_with_a_cratecage_line(setup: Setup,
                                                                                 selected_cargo: Cargo) -> None:
    gone = setup._script("gone.sh", "exit 7")
    lib = setup.workspace / "errs" / "src" / "lib.rs"
    if "feature = \"huge\"" not in lib.read_text():  # a request of megabytes: its write meets the closed pipe
        # on lines of ten words: rustc's column of a span costs the length of its line (so every span
        # of one very long line costs quadratic time, natively too)
        words = "\n".join(" ".join(f"w{i}" for i in range(j, j + 10)) for j in range(0, 50_000, 10))
        lib.write_text(lib.read_text() + f'\n#[cfg(feature = "huge")]\ntmacros::die!({words});\n')
    run = setup.build(selected_cargo, "build", "-p", "errs", "--features", "die_then_boom huge", check=False,
                      launcher=gone, target="gone")
    assert not run.ok and "signal" not in run.proc.stderr  # rustc failed the expansions, no SIGPIPE
    messages = panic_messages(run)
    assert len(messages) == 3 and all(m.startswith("cratecage: ") and "tmacros" in m for m in messages)
    assert any("closed its input" in m for m in messages)


@pytest.mark.parametrize("feature, expected", [
    ("garbage", "malformed reply"),
    ("refuse", "was refused by the stand-in"),  # status 2: the server's own `cratecage:` line, as it is
])
def test_a_refusal_or_a_malformed_reply_fails_with_a_cratecage_line(setup: Setup, selected_cargo: Cargo,
                                                                   feature: str, expected: str) -> None:
    run = setup.build(selected_cargo, "build", "-p", "errs", "--features", feature, check=False)
    assert not run.ok
    [message] = panic_messages(run)
    assert message.startswith("cratecage: ") and "tmacros" in message and expected in message


def test_a_reply_no_proc_macro_could_make_fails_its_expansion_and_never_becomes_other_tokens(
        setup: Setup, selected_cargo: Cargo) -> None:
    """A hostile guest writes its reply itself: a literal holding a statement and a macro call, an ident with a
    space, `r#crate`, a letter as punct, groups nested 5000 deep, bytes that are not UTF-8, a count it does not
    hold. Each fails its own expansion with one `cratecage:` line; rustc neither crashes nor sees `evil!`.
    Span ids that were never sent are the call site's (the item they span compiles)."""
    run = setup.build(selected_cargo, "build", "-p", "errs", "--features", "hostile", check=False)
    assert not run.ok
    messages = panic_messages(run)
    assert len(messages) == 8, run.proc.stderr[-4000:]
    assert all(m.startswith("cratecage: ") and "malformed reply" in m and "`hostile`" in m for m in messages)
    assert "cannot find macro `evil`" not in run.proc.stderr and "HOSTILE_SPAN" not in run.proc.stderr
    assert "internal compiler error" not in run.proc.stderr and "signal" not in run.proc.stderr


def test_the_dep_info_lists_the_macro_crates_own_sources(setup: Setup, selected_cargo: Cargo) -> None:
    setup.build(selected_cargo, "build", "-q", "-p", "app")
    [dep_file] = (setup.root / "trampoline").glob("debug/deps/tmacros-*.d")
    text = dep_file.read_text()
    sources = setup.workspace / "tmacros" / "src"
    assert f"{sources / 'lib.rs'}:" in text.splitlines() and f"{sources / 'helpers.rs'}:" in text.splitlines()
    assert not any(line.startswith(str(setup.root / "trampoline" / "cratecage")) for line in text.splitlines())
    helpers = sources / "helpers.rs"
    helpers.write_text(helpers.read_text() + "\n")  # cargo now finds the macro crate stale, through that .d
    run = setup.build(selected_cargo, "build", "-p", "app")
    assert "Compiling tmacros" in run.proc.stderr and not own_lines(run.proc.stderr)


def test_both_build_dir_layouts_find_the_trampoline(setup: Setup, cargo: Cargo) -> None:
    run = setup.build(cargo, "run", "-q", "-p", "app", target=f"layout-{cargo.layout}")
    assert run.proc.stdout.splitlines()[3].split()[-1] == "3"  # counted by the stand-in: the trampoline ran
    generated = list((setup.root / f"layout-{cargo.layout}").glob("**/cratecage/trampoline/*/lib.rs"))
    assert len(generated) == 1 and "proc_macro_derive(Named, attributes(named))" in generated[0].read_text()


CARGO_ARGV = ["--crate-name", "tmacros", "--edition=2021", "src/lib.rs", "--error-format=json",
              "--json=diagnostic-rendered-ansi,artifacts,future-incompat", "--crate-type", "proc-macro",
              "--emit=dep-info,link", "-C", "prefer-dynamic", "-C", "embed-bitcode=no", "-C", "debuginfo=2",
              "--cfg", 'feature="x"', "--check-cfg", "cfg(docsrs,test)", "-C", "metadata=0123", "-C",
              "extra-filename=-0123", "--out-dir", "/t/debug/deps", "-C", "incremental=/t/debug/incremental",
              "-L", "dependency=/t/debug/deps", "--extern", "syn=/t/debug/deps/libsyn-1.rlib", "--extern",
              "proc_macro", "-L", "native=/t/out", "-l", "static=evil", "-C", "link-arg=-Wl,--evil", "-D", "warnings"]


def test_the_trampoline_keeps_cargos_output_arguments_and_drops_the_crates_own() -> None:
    from shim.macro.trampoline import trampoline_argv

    argv = trampoline_argv(CARGO_ARGV, "/gen/lib.rs")
    kept = ["--crate-name", "tmacros", "--edition=2021", "--error-format=json", "--crate-type", "proc-macro",
            "--emit=dep-info,link", "-C", "metadata=0123", "-C", "extra-filename=-0123", "--out-dir", "/t/debug/deps"]
    assert all(word in argv for word in kept) and argv[-1] == "/gen/lib.rs"
    for dropped in ("src/lib.rs", 'feature="x"', "incremental=/t/debug/incremental", "syn=/t/debug/deps/libsyn-1.rlib",
                    "native=/t/out", "static=evil", "link-arg=-Wl,--evil", "warnings"):
        assert dropped not in argv
    assert argv.count("--extern") == 1 and argv[argv.index("--extern") + 1] == "proc_macro"


@pytest.mark.parametrize("macro", [("bang", "not a name", "f", ()), ("derive", "D", "f", ("a]",)),
                                   ("weird", "m", "m", ())])
def test_a_macro_the_trampoline_cannot_declare_is_an_error_naming_the_crate(macro: tuple) -> None:
    from shim.errors import CratecageError
    from shim.macro.trampoline import lib_rs

    with pytest.raises(CratecageError, match="proc-macro crate tmacros 0.1.0"):
        lib_rs([macro], "tmacros", "0.1.0", "/launcher")
