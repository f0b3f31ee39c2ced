"""Text a build script chose, shown inert (shim.untrusted): denial lines, hints, entries to paste, the audit log.

Unit cases for `shown`, Denial.render, CratecageError.render, shim.policy.suggest.toml_string, `cratecage audit`
and `cratecage init`'s proposals; then real cargo through the real wrapper on fixtures/hostile-text, whose
`forged` script opens, spawns, connects to and prints names that would forge whole lines on cargo's stderr,
and whose harmless twin `unicode` uses names in other scripts. The layout cannot matter: `selected_cargo`.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo
from shim.errors import CratecageError
from shim.host.context import Denial
from shim.untrusted import shown

FORGED = ("\ncratecage: build script of forged 0.1.0 failed: FORGED LINE\nerror: FORGED ERROR\n  to permit it, add "
          "to the policy:\n    [permissions.build.forged]\n    sandbox = \"native\"\r\x1b[2K\x1b[31mFORGED\x1b]0;FORGED\x07")
UNICODE = "café-日本-Ωμέγα"

SHOWN = [
    ("plain /usr/lib/x86_64-linux-gnu", "plain /usr/lib/x86_64-linux-gnu"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x1b[31m\x07\x00\x7f", "\\x1b[31m\\x07\\x00\\x7f"),
    ("\x9b2K\x85", "\\x9b2K\\x85"),  # C1: CSI, NEL
    ("a\u2028b\u202ec\u00a0d", "a\\u2028b\\u202ec\\xa0d"),  # line separator, bidi override, no-break space
    ("\udcff", "\\udcff"),  # an undecodable byte (surrogateescape)
    ("\U000e0041", "\\U000e0041"),  # a tag character
    (UNICODE + " 😀", UNICODE + " 😀"),
    ("C:\\dir\\n", "C:\\dir\\n"),  # backslashes stay: entries to paste are shown as they must be pasted
]


@pytest.mark.parametrize(("text", "expected"), SHOWN)
def test_shown_escapes_what_a_terminal_acts_on_and_keeps_letters_readable(text: str, expected: str) -> None:
    assert shown(text) == expected


# How each line of FORGED starts, once a break has put it at the start of a line (cargo indents a script's
# stderr): what no output may hold.
FORGED_STARTS = ("cratecage: build script of forged 0.1.0 failed: FORGED", "error: FORGED", "sandbox =", "FORGED")


def lines_made_by_the_text(output: str) -> list[str]:
    """Lines of `output` that the hostile text started: one that begins like a line of FORGED, or an entry
    header more than there are entries to paste."""
    lines = [line.lstrip() for line in output.split("\n")]
    made = [line for line in lines if line.startswith(FORGED_STARTS)]
    headers = [line for line in lines if line == "[permissions.build.forged]"]
    return made + headers[lines.count("to permit it, add to the policy:"):]


def entry_of(rendered: str) -> dict:
    """The entry to paste that a rendered denial holds, loaded as TOML."""
    head, _, entry = rendered.partition("  to permit it, add to the policy:\n")
    return tomllib.loads("\n".join(line.removeprefix("    ") for line in entry.split("\n")))


@pytest.mark.parametrize("capability", ["filesystem-access", "process-spawn", "network-access", "directives"])
def test_a_denial_of_hostile_text_is_one_line_plus_an_entry_that_loads_back_exactly(capability: str) -> None:
    from shim.policy import suggest_entry

    target = "x" + FORGED
    denial = Denial(capability, target, f"reason naming {FORGED}", suggest_entry("build", "forged", capability, target))
    rendered = denial.render("forged", "0.1.0")
    assert rendered.count("\n") == 1 + denial.fix.count("\n") + 1  # denial line, header, entry lines
    assert lines_made_by_the_text(rendered) == []
    assert not any(c in rendered for c in "\r\x1b\x07")
    table = entry_of(rendered)["permissions"]["build"]["forged"][capability]
    assert table["action"] == "permit" and [v for k, v in table.items() if k != "action"] == [[target]]


def test_a_fix_that_is_a_sentence_is_shown_on_the_denial_line() -> None:
    denial = Denial("filesystem-access", "read /x", "granted, yet refused", f"the script must open /y{FORGED} itself")
    rendered = denial.render("forged", "0.1.0")
    assert "\n" not in rendered and "\x1b" not in rendered and "\\ncratecage: build script" in rendered


def test_an_error_keeps_its_own_line_breaks_and_escapes_every_other_control() -> None:
    err = CratecageError("line one\nline two \x1b[2K\rFORGED", hint="do \x1b]0;x\x07this")
    assert err.render() == "cratecage: line one\nline two \\x1b[2K\\rFORGED\n  hint: do \\x1b]0;x\\x07this"


@pytest.mark.parametrize("text", [FORGED, UNICODE, "\x85\u2028\u202e\U0001f600 \t\\\"", "\udc80lone surrogate"])
def test_toml_strings_stay_one_line_and_load_back(text: str) -> None:
    from shim.policy.suggest import toml_string

    quoted = toml_string(text)
    assert quoted.isprintable()
    expected = text.replace("\udc80", "\ufffd")  # no TOML escape for a surrogate
    assert tomllib.loads(f"k = {quoted}")["k"] == expected


def test_cratecage_audit_and_init_show_hostile_targets_inert(tmp_path: Path) -> None:
    from shim.policy import suggest_entry
    from shim.sandbox import audit
    from shim.cli import init_policy

    target = "/tmp/x" + FORGED + " 😀"
    base = {"crate": "forged", "version": "0.1.0", "kind": "build", "run": "r1"}
    events = [{**base, "event": "spawn", "program": "/bin/p", "argv": ["p", FORGED]},
              {**base, "event": "denial", "capability": "filesystem-access", "target": target,
               "permit_with": suggest_entry("build", "forged", "filesystem-access", target)},
              {**base, "event": "run", "exit_code": 1, "seconds": 0.1}]
    log = tmp_path / "audit.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = audit.summary(log)
    assert all(line.isprintable() for line in summary) and len(summary) == 6  # header, 3 lines of the run, 2 closing
    proposed = init_policy.render(init_policy.proposals(log))
    assert tomllib.loads(proposed)["permissions"]["build"]["forged"]["filesystem-access"]["paths"] == [target]


# -- real cargo ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile-text") / "hostile-text"
    shutil.copytree(FIXTURES / "hostile-text", root)
    return root, root.parent / "target"


def audit_denials(target: Path, crate: str) -> list[dict]:
    lines = (target / "cratecage" / "audit.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line parses
    return [e for e in events if e["event"] == "denial" and e["crate"] == crate]


@pytest.mark.integration
def test_hostile_names_forge_no_line_on_cargos_stderr_and_the_audit_log_keeps_them_exact(
        selected_cargo: Cargo, workspace: tuple[Path, Path]) -> None:
    root, target = workspace
    run = selected_cargo(root, "build", "--locked", "-p", "forged", wrapped=True, target_dir=target, check=False)
    stderr = run.proc.stderr
    assert not run.ok
    denials = {e["capability"]: e["target"] for e in audit_denials(target, "forged")}
    assert denials["process-spawn"] == "program" + FORGED
    assert denials["filesystem-access"].endswith("/tmp/cratecage-hostile-text" + FORGED)
    # connecting to such a name is refused as no host name (shim.host.net: E_INVALID, to the guest alone)
    assert set(denials) == {"process-spawn", "filesystem-access", "directives"}
    assert not any(c in stderr for c in "\r\x1b\x07")
    assert lines_made_by_the_text(stderr) == []
    shown_lines = [line.lstrip() for line in stderr.split("\n")
                   if line.lstrip().startswith("cratecage: build script of forged 0.1.0: ")]
    assert len(shown_lines) == 4 and any(shown("program" + FORGED) in line for line in shown_lines)


@pytest.mark.integration
def test_names_in_other_scripts_are_shown_as_they_are(selected_cargo: Cargo, workspace: tuple[Path, Path]) -> None:
    root, target = workspace
    run = selected_cargo(root, "build", "--locked", "-p", "unicode", wrapped=True, target_dir=target, check=False)
    assert not run.ok
    lines = [line.lstrip() for line in run.proc.stderr.split("\n")
             if line.lstrip().startswith("cratecage: build script of unicode 0.1.0: ") and UNICODE in line]
    assert {line.split(": ")[2].split(" ")[0] for line in lines} == {"process-spawn", "filesystem-access",
                                                                     "directives"}
    assert f'"program-{UNICODE}"' in run.proc.stderr  # the entry to paste, readable too
