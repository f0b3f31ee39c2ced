"""The macro server (shim/macro/server.py) driven over pipes as a trampoline drives it (shim/macro/PROTOCOL.md).

The guest is tests/macro/abi_guest.rs: a wasm32-wasip1 `cdylib` written directly against the ABI, linked
against the std facade like a build script, without any `proc_macro` crate. Every macro is function-like
and takes its argument from the input's first literal. The server runs through its real launcher
(`write_launcher`), with a policy file of the test's own (CRATECAGE_POLICY) and its audit log in a state
directory of the test's own.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from shim.compile.argv import STACK_SIZE_ARG
from shim.macro.server import write_launcher
from shim.sandbox import audit
from shim.toolchain import compiler as toolchain
from shim.toolchain import facade

from conftest import WRAPPER, scrubbed

GUEST = Path(__file__).with_name("abi_guest.rs")
CANARY = "canary-7f3e9b"
OK, PANIC, REFUSED = 0, 1, 2


def compile_guest(out: Path, *extra: str) -> Path:
    """The ABI guest, linked as shim/build/script.py links a build script (its stack, the facade's LINK_ARGS)."""
    env = scrubbed(dict(os.environ))
    tc = toolchain.resolve(environ=env)
    if not tc.ready:
        pytest.fail(f"no wasm32-wasip1-capable toolchain is selected ({tc.how}): run `make setup`")
    link = [arg for value in (STACK_SIZE_ARG, *facade.LINK_ARGS) for arg in ("-C", value)]
    done = subprocess.run([tc.compiler.rustc, "--edition", "2021", "--crate-type", "cdylib",
                           "--crate-name", "abi_guest", "--target", "wasm32-wasip1", "--sysroot", str(tc.wasm_sysroot),
                           "--extern", f"std={facade.facade_rlib(tc, env)}", *link, *extra, "-o", str(out), str(GUEST)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def guest_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_guest(tmp_path_factory.mktemp("abi-guest") / "abi_guest.wasm")


# -- the wire ------------------------------------------------------------------------------------------------

def text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("<I", len(data)) + data


def literal_stream(*args: str) -> bytes:
    """A stream of string literals, each with span id 2 (the span table's first entry)."""
    return struct.pack("<I", len(args)) + b"".join(b"\x04" + struct.pack("<II", 2, 2) + text(f'"{a}"') for a in args)


CALL_SITE = text("src/lib.rs") + b"\x01" + text("/ws/src/lib.rs") + struct.pack("<6I", 3, 4, 3, 20, 40, 56) + b"\x00"


def request(name: str, *args: str) -> bytes:
    return struct.pack("<IB", 0x314D4343, 1) + text(name) + struct.pack("<I", 1) + CALL_SITE + literal_stream(*args)


def frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def first_literal(reply: bytes) -> str:
    """The one string literal of an ok reply's stream."""
    count, tag = struct.unpack_from("<IB", reply, 5)
    assert (count, tag) == (1, 4), reply[:40]
    (size,) = struct.unpack_from("<I", reply, 18)
    return json.loads(reply[22:22 + size].decode())


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    state: Path

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reply(self) -> bytes:
        assert self.proc.stdout is not None
        head = self.proc.stdout.read(4)
        assert len(head) == 4, f"no reply; stderr:\n{self.stderr()}"
        (size,) = struct.unpack("<I", head)
        body = self.proc.stdout.read(size)
        assert len(body) == size and body[:4] == b"CCR1", body[:40]
        return body

    def ask(self, name: str, *args: str) -> tuple[int, bytes]:
        self.send(frame(request(name, *args)))
        body = self.reply()
        return body[4], body

    def ask_text(self, name: str, *args: str) -> tuple[int, str]:
        """(status, the literal for an ok reply, the message for another)."""
        status, body = self.ask(name, *args)
        return status, first_literal(body) if status == OK else body[9:].decode()

    def close(self) -> tuple[int, bytes]:
        """EOF on stdin: the exit code and whatever else came on stdout."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        return self.proc.wait(timeout=30), rest

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


Start = Callable[..., Served]  # (policy text, **environment) -> a running server


@pytest.fixture
def serve(guest_wasm: Path, tmp_path: Path) -> Iterator[Start]:
    started: list[Served] = []

    def start(policy: str = "", wasm: Path = guest_wasm, **env: str) -> Served:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        (home / "secret.txt").write_text(CANARY)
        state = tmp_path / "target" / "cratecage"  # a build's state dir (shim.cargo.layout.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cratecage.toml").write_text(policy)
        tc = toolchain.resolve(environ=scrubbed(dict(os.environ)))
        launcher = tmp_path / "macro-server"
        write_launcher(launcher, wasm=str(wasm), module_cache=str(tmp_path / "modules"), package="abi_guest",
                       version="0.1.0", rustc=tc.compiler.rustc, sysroot=tc.compiler.sysroot, state_dir=str(state))
        environ = {**scrubbed(dict(os.environ)), "HOME": str(home), "SECRET_TOKEN": CANARY,
                   "CARGO_PKG_NAME": "app", "CARGO_PKG_VERSION": "0.1.0", "CARGO_CRATE_NAME": "app",
                   "CARGO_MANIFEST_DIR": str(tmp_path), "CRATECAGE_POLICY": str(tmp_path / "cratecage.toml"), **env}
        stderr = tmp_path / f"stderr-{len(started)}"
        with open(stderr, "wb") as err:
            proc = subprocess.Popen([str(launcher)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                    env=environ, cwd=tmp_path)
        served = Served(proc, stderr, state)
        started.append(served)
        return served

    yield start
    for served in started:  # EOF, as rustc ends: the server ends what it started (a SIGKILL would not)
        if served.proc.poll() is None:
            try:
                served.close()
            except subprocess.TimeoutExpired:
                served.proc.kill()
                served.proc.wait()


# -- expanding -----------------------------------------------------------------------------------------------

def test_echo_gets_its_input_stream_back_and_stdout_holds_nothing_but_replies(serve: Start) -> None:
    server = serve()
    status, body = server.ask("echo", "a", "b\\n")
    assert status == OK and body[5:] == literal_stream("a", "b\\n")
    assert server.close() == (0, b"")


def test_a_static_sees_1_2_3_in_one_server_and_the_audit_counts_its_expansions(serve: Start) -> None:
    server = serve()
    assert [server.ask_text("count") for _ in range(3)] == [(OK, "1"), (OK, "2"), (OK, "3")]
    assert server.close() == (0, b"")
    events = [json.loads(line) for line in (server.state / audit.AUDIT_LOG).read_text().splitlines()]
    run = [e for e in events if e["event"] == "run"]
    assert [(e["kind"], e["crate"], e["expansions"], e["consumer"], e["exit_code"]) for e in run] == [
        ("macro", "abi_guest", 3, "app 0.1.0", 0)]
    shown = subprocess.run([str(WRAPPER), "audit", str(server.state.parent)], capture_output=True, text=True,
                           timeout=60, env=scrubbed(dict(os.environ)))
    assert shown.returncode == 0, shown.stderr
    assert any(line.startswith("abi_guest") and "3 expansions for app 0.1.0" in line
               for line in shown.stdout.splitlines()), shown.stdout
    assert shown.stdout.splitlines()[-2:] == [
        "ran as wasm in the sandbox: 0 build scripts (0 failed), 1 proc macro crate (3 expansions in 1 crate)",
        "ran natively: 0 build scripts, 0 proc macro crates"]


def test_a_panic_is_a_status_1_reply_with_its_message_and_the_next_expansion_is_fresh(serve: Start) -> None:
    server = serve()
    assert server.ask_text("count") == (OK, "1")
    assert server.ask_text("boom", "it broke") == (PANIC, "boom: it broke")
    assert server.ask_text("count") == (OK, "1")  # statics start over with the new instance
    assert server.close()[0] == 0


def test_what_a_macro_prints_goes_to_stderr_never_into_the_stream(serve: Start) -> None:
    server = serve()
    assert server.ask_text("shout", "printed by the guest") == (OK, "shouted")
    assert server.ask_text("count") == (OK, "1")
    assert server.close() == (0, b"")
    assert "printed by the guest" in server.stderr()


@pytest.mark.parametrize("macro, env, limit", [
    ("spin", {"CRATECAGE_LIMIT_TIME": "1"}, "CRATECAGE_LIMIT_TIME"),
    ("bomb", {"CRATECAGE_LIMIT_MEMORY": "64MiB"}, "CRATECAGE_LIMIT_MEMORY"),
])
def test_a_loop_or_an_allocation_bomb_fails_that_expansion_at_its_limit_and_the_next_one_works(
        serve: Start, macro: str, env: dict[str, str], limit: str) -> None:
    server = serve(**env)
    assert server.ask_text("count") == (OK, "1")
    started = time.monotonic()
    status, message = server.ask_text(macro)
    assert time.monotonic() - started < 4.0
    assert status == REFUSED and message.startswith("cratecage:") and limit in message
    assert "abi_guest" in message and "app 0.1.0" in message and "[permissions.macro.abi_guest]" in message
    assert server.ask_text("count") == (OK, "1")
    assert server.close()[0] == 0


def test_a_flood_of_empty_lines_reaches_the_log_marked_but_within_the_stderr_limit(serve: Start) -> None:
    """Each line is marked, so a newline the guest prints costs the log ~25 bytes: that counts against the
    limit too, and the guest is stopped long before its 8 MiB of newlines become 200."""
    server = serve(CRATECAGE_LIMIT_STDERR="4MiB")
    status, message = server.ask_text("newlines", "8")
    assert status == REFUSED and "CRATECAGE_LIMIT_STDERR" in message
    assert server.close()[0] == 0
    assert server.stderr_path.stat().st_size < 6 << 20


def test_a_reply_over_the_bound_is_refused_without_being_read(serve: Start) -> None:
    server = serve()
    status, message = server.ask_text("flood")
    assert status == REFUSED and "over the 256 MiB a reply may hold" in message
    assert "proc macro `flood` of abi_guest 0.1.0 (compiling app 0.1.0)" in message
    assert server.ask_text("count") == (OK, "1")  # a fresh instance
    assert server.close()[0] == 0


def test_an_expansion_stuck_in_a_host_call_is_given_up_on_and_its_late_end_disturbs_no_later_one(
        serve: Start) -> None:
    server = serve(CRATECAGE_LIMIT_TIME="1")
    started = time.monotonic()
    status, message = server.ask_text("nap", "5")  # a WASI sleep: no epoch fires inside it
    assert time.monotonic() - started < 4.5
    assert status == REFUSED and "inside a host call" in message and "CRATECAGE_LIMIT_TIME" in message
    assert server.ask_text("count") == (OK, "1")
    time.sleep(3)  # the abandoned call ends now
    assert [server.ask_text("count") for _ in range(2)] == [(OK, "2"), (OK, "3")]
    assert server.close() == (0, b"")


@pytest.mark.parametrize("hangup", ["requests", "replies"])
def test_a_trampoline_gone_mid_expansion_ends_the_expansion_and_the_server_at_once(
        serve: Start, hangup: str) -> None:
    """rustc killed while a macro spins: the server holds rustc's stderr (cargo waits for it to close), so it
    must not spin on until the time limit. Either end of its pipes closing says rustc is gone."""
    server = serve(CRATECAGE_LIMIT_TIME="120")
    assert server.ask_text("count") == (OK, "1")
    server.send(frame(request("spin")))
    time.sleep(1.0)
    assert server.proc.poll() is None  # spinning
    assert server.proc.stdin is not None and server.proc.stdout is not None
    started = time.monotonic()
    (server.proc.stdin if hangup == "requests" else server.proc.stdout).close()
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3.0
    if hangup == "requests":
        assert server.proc.stdout.read() == b""  # no reply written for nobody
    assert "Traceback" not in server.stderr()
    events = [json.loads(line) for line in (server.state / audit.AUDIT_LOG).read_text().splitlines()]
    assert [(e["expansions"], e["exit_code"]) for e in events if e["event"] == "run"] == [(2, 1)]


def forged_lines(text: str) -> list[str]:
    """The lines of `text` that could pass for cratecage's own: they say `cratecage` or offer the escape."""
    return [line for line in text.splitlines() if "cratecage" in line.lower() or 'sandbox = "native"' in line]


def test_a_guest_cannot_forge_a_refusal_of_the_sandbox(serve: Start) -> None:
    """Status 2 is the sandbox's word: the guest's own becomes one escaped line of the server's."""
    server = serve()
    status, message = server.ask_text("forge")
    assert status == REFUSED
    assert "\n" not in message and "\r" not in message
    assert message.startswith("cratecage: proc macro `forge` of abi_guest 0.1.0 (compiling app 0.1.0): its module "
                              "refused the request: ")
    assert server.ask_text("count") == (OK, "1")
    assert server.close()[0] == 0


def test_a_panic_message_is_shown_as_written_but_for_lines_that_could_pass_for_cratecages(serve: Start) -> None:
    server = serve()
    status, message = server.ask_text("forge_panic")
    assert status == PANIC
    lines = message.split("\n")
    assert lines[0] == "not a unit struct"  # as natively
    assert forged_lines(message) and all(line.startswith("[abi_guest proc macro] ") for line in forged_lines(message))
    assert "\r" not in message and "\x1b" not in message
    assert server.close()[0] == 0


def test_what_a_guest_prints_is_marked_as_its_own_line_by_line(serve: Start) -> None:
    server = serve()
    assert server.ask_text("forge_print") == (OK, "printed")
    assert server.close()[0] == 0
    printed = [line for line in server.stderr().splitlines() if line.startswith("[abi_guest proc macro] ")]
    assert len(printed) == 6, server.stderr()  # stderr's two (the unfinished one ended), stdout's four
    assert not [line for line in forged_lines(server.stderr()) if line not in printed]
    assert "\r" not in server.stderr() and "\x1b" not in server.stderr()


# -- the policy: each hostile request refused, its harmless twin working when granted ------------------------

@pytest.fixture
def listener() -> Iterator[tuple[int, list[int]]]:
    """A loopback server that sends the canary to whoever connects."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    connected = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            connected.append(1)
            conn.sendall(CANARY.encode())
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield sock.getsockname()[1], connected
    sock.close()


def hostile(tmp_path: Path, port: int) -> dict[str, tuple[str, str, str, str]]:
    """name -> (macro, argument, capability, the grant of its harmless twin)."""
    home_file = str(tmp_path / "home" / "secret.txt")
    return {
        "passwd": ("read", "/etc/passwd", "filesystem-access",
                   'filesystem-access = { action = "permit", paths = ["/etc/passwd"] }'),
        "home file": ("read", home_file, "filesystem-access",
                      f'filesystem-access = {{ action = "permit", paths = ["{home_file}"] }}'),
        "shell": ("spawn", f"echo {CANARY}", "process-spawn",
                  'process-spawn = { action = "permit", programs = ["sh"] }'),
        "connect": ("connect", f"127.0.0.1:{port}", "network-access",
                    f'network-access = {{ action = "permit", routes = ["127.0.0.1:{port}"] }}'),
    }


@pytest.mark.parametrize("case", ["passwd", "home file", "shell", "connect"])
def test_a_hostile_macro_is_refused_with_its_policy_entry_and_its_granted_twin_works(
        serve: Start, tmp_path: Path, listener: tuple[int, list[int]], case: str) -> None:
    port, connected = listener
    macro, arg, capability, grant = hostile(tmp_path, port)[case]
    server = serve()
    status, message = server.ask_text(macro, arg)
    assert status == REFUSED and message.startswith("cratecage: ")
    assert f"{capability} denied" in message and "[permissions.macro.abi_guest]" in message
    assert "app 0.1.0" in message
    assert server.ask_text("count") == (OK, "1")  # the refusal did not break the instance
    assert server.close() == (0, b"")
    assert CANARY not in message and CANARY not in server.stderr() and "root:x:0:0" not in message
    assert not connected

    twin = serve(f"[permissions.macro.abi_guest]\n{grant}\n")
    status, got = twin.ask_text(macro, arg)
    assert status == OK, got
    assert (CANARY in got) if case != "passwd" else got.startswith("root:")
    assert twin.close() == (0, b"")


def test_a_secret_variable_reads_as_unset_with_its_entry_and_a_granted_twin_sees_it(serve: Start) -> None:
    server = serve()
    assert server.ask_text("env", "SECRET_TOKEN") == (OK, "unset")
    assert server.ask_text("env", "CARGO_CRATE_NAME") == (OK, "app")  # the crate being compiled's, by default
    assert server.ask_text("env", "HOME") == (OK, "unset")
    assert server.close() == (0, b"")
    stderr = server.stderr()
    assert "env-access not granted: SECRET_TOKEN" in stderr and "[permissions.macro.abi_guest]" in stderr
    assert CANARY not in stderr

    twin = serve('[permissions.macro.abi_guest]\nenv-access = { action = "permit", vars = ["SECRET_TOKEN"] }\n')
    assert twin.ask_text("env", "SECRET_TOKEN") == (OK, CANARY)
    assert twin.close()[0] == 0


def test_no_other_spelling_of_a_secret_variable_reaches_it_even_where_its_name_is_granted(serve: Start) -> None:
    """The host's environment is looked up by exact name only: other cases, `=`, blanks, a name granted in
    other cases; and what a grant lets through is exactly the granted name."""
    spellings = ["secret_token", "Secret_Token", "SECRET_TOKEN=", "SECRET_TOKEN=x", " SECRET_TOKEN", "SECRET_TOKEN ",
                 "SECRET_TOKEN\\0", "=SECRET_TOKEN", "SECRET"]
    for policy in ("", '[permissions.macro.abi_guest]\nenv-access = { action = "permit", vars = ["secret_token"] }\n'):
        server = serve(policy)
        assert [server.ask_text("env", name) for name in spellings] == [(OK, "unset")] * len(spellings)
        assert server.close()[0] == 0
        assert CANARY not in server.stderr()


def test_nothing_a_granted_program_starts_outlives_the_server(serve: Start) -> None:
    marker = "313.25"
    server = serve('[permissions.macro.abi_guest]\nprocess-spawn = { action = "permit", programs = ["sh"] }\n')
    assert server.ask_text("start", f"exec sleep {marker}") == (OK, "started")
    deadline = time.monotonic() + 10
    while not _sleeping(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleeping(marker)  # left running by the expansion
    assert server.close()[0] == 0
    assert not _sleeping(marker)


def _sleeping(marker: str) -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmdline.endswith(f"sleep\0{marker}\0".encode()) and state != "Z":
            found.append(pid)
    return found


# -- garbage on stdin ----------------------------------------------------------------------------------------

def test_a_frame_that_is_no_request_is_refused_and_the_server_goes_on(serve: Start) -> None:
    server = serve()
    server.send(frame(b"GET / HTTP/1.1\r\n\r\n"))
    body = server.reply()
    assert body[4] == REFUSED and body[9:].decode().startswith("cratecage: ") and b"malformed" in body
    assert server.ask_text("count") == (OK, "1")
    assert server.close() == (0, b"")


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff" + os.urandom(64), b"\x10\x00", b"\x40\x00\x00\x00abc"])
def test_garbage_gets_one_refusal_or_a_clean_exit_and_never_a_traceback(serve: Start, garbage: bytes) -> None:
    server = serve()
    server.send(garbage)
    code, out = server.close()
    assert code in (0, 2) and b"Traceback" not in out and "Traceback" not in server.stderr()
    if out:
        (size,) = struct.unpack_from("<I", out)
        assert len(out) == 4 + size and out[4:8] == b"CCR1" and out[8] == REFUSED


# -- what the server refuses before any expansion ------------------------------------------------------------

def test_a_module_of_another_protocol_version_is_refused_at_every_request(serve: Start, tmp_path: Path) -> None:
    future = compile_guest(tmp_path / "future.wasm", "--cfg", "future_abi", "--check-cfg", "cfg(future_abi)")
    server = serve(wasm=future)
    for _ in range(2):
        status, message = server.ask_text("count")
        assert status == REFUSED and message.startswith("cratecage: ") and "macro protocol 2" in message
    assert server.close() == (0, b"")


def test_a_malformed_policy_refuses_every_request_with_one_line_naming_the_macro_crate(serve: Start) -> None:
    server = serve("[permissions.macro.abi_guest]\nfilesystem-access = 3\n")
    status, message = server.ask_text("count")
    assert status == REFUSED and message.startswith("cratecage: proc macro crate abi_guest 0.1.0 (compiling app 0.1.0): ")
    assert "filesystem-access" in message
    assert "Traceback" not in message and server.ask_text("count")[0] == REFUSED
    assert server.close() == (0, b"")


def test_what_python_or_a_child_prints_by_mistake_goes_to_stderr_not_into_the_stream() -> None:
    code = ("import os, subprocess\n"
            "from shim.macro.server import claim_pipes, write_frame\n"
            "requests, replies = claim_pipes()\n"
            "print('stray print', flush=True)\n"
            "subprocess.run(['sh', '-c', 'echo stray child; read line; echo \"child read: $line\"'])\n"
            "write_frame(replies, os.read(requests, 100))\n")
    done = subprocess.run([sys.executable, "-c", code], input=b"request\n", capture_output=True, timeout=60,
                          cwd=Path(__file__).parents[2], env=scrubbed(dict(os.environ)))
    assert done.returncode == 0, done.stderr
    assert done.stdout == frame(b"request\n")  # the child read nothing: its stdin is /dev/null
    assert b"stray print" in done.stderr and b"stray child" in done.stderr and b"child read: \n" in done.stderr


def test_a_server_under_no_cargo_takes_the_workspace_pinned_in_its_launcher(tmp_path: Path) -> None:
    """rust-analyzer's proc-macro server is no cargo (nor is pytest): the launcher's pinned root and policy
    file apply; a root the environment names already (a build under cargo pins one for what it starts) wins."""
    from shim.macro.server import policy_environ

    pinned = {"CRATECAGE_POLICY": f"{tmp_path}/cratecage.toml", "CRATECAGE_WORKSPACE_ROOT": str(tmp_path)}
    crate = {"CARGO_MANIFEST_DIR": str(tmp_path / "dep"), "CARGO_PKG_NAME": "dep"}
    got = policy_environ(crate, pinned)
    assert got["CRATECAGE_WORKSPACE_ROOT"] == str(tmp_path) and got["CRATECAGE_POLICY"] == f"{tmp_path}/cratecage.toml"
    assert got["CARGO_PKG_NAME"] == "dep"
    named = {**crate, "CRATECAGE_WORKSPACE_ROOT": str(tmp_path / "other")}
    assert policy_environ(named, pinned) == named
    assert policy_environ(crate, {}) == crate  # a launcher without a pinned workspace: refused later, as before
