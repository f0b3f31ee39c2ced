"""The network capability: std::net::TcpStream in a build script reaches only the crate's granted routes.

Three layers, as the code has them: the pure parts of shim/host/abi.py and shim/host/net.py (address records,
which route admits an address, lookups refused before any query); guests compiled against the std facade
and run under real wasmtime with shim.host.net (tests/guests.py), talking to a real TCP server on
127.0.0.1; and real cargo builds of fixtures/net-demo through the wrapper. Every refusal checks the
denial and that the server's secret reply never reached the output; each has a twin that is allowed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shim.host import abi
from shim.host import net as host_net
from shim.host.context import RunContext
from shim.host.process import HostCallError
from shim.policy.load import load_text

from conftest import FIXTURES, Cargo, CargoRun
from guests import Compiler, Ran, Sandbox, cache_env, compiler, facade_rlib, sandbox, tc  # noqa: F401 (fixtures)

SECRET = "net-demo-canary-7f3a"


# -- a TCP server on 127.0.0.1 that answers one line with the secret ------------------------------------

@dataclass
class Peer:
    """One connection the server accepted: what it received and when the client closed it."""

    received: bytearray = field(default_factory=bytearray)
    closed: threading.Event = field(default_factory=threading.Event)


class Server:
    """Accepts connections; answers the first line of each with SECRET (`reply=False`: never answers)."""

    def __init__(self, *, reply: bool = True) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[Peer] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def peer(self, index: int = 0) -> Peer:
        """The index-th connection, once accepted (the kernel completes a connect before `accept` returns)."""
        deadline = time.monotonic() + 30  # an accept thread starved by a loaded machine
        while len(self.peers) <= index and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.peers[index]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            peer = Peer()
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer: Peer) -> None:
        with conn:
            answered = False
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                peer.received += data
                if self.reply and not answered and b"\n" in peer.received:
                    conn.sendall(f"{SECRET}\n".encode())
                    answered = True
        peer.closed.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def server():  # type: ignore[no-untyped-def]
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture()
def silent():  # type: ignore[no-untyped-def]
    srv = Server(reply=False)
    yield srv
    srv.close()


def grant(tmp_path: Path, *routes: str, mode: str = "enforce", crate: str = "guest"):  # type: ignore[no-untyped-def]
    listed = ", ".join(f'"{r}"' for r in routes)
    text = (f'[permissions]\nmode = "{mode}"\ncurated-defaults = false\n[permissions.build.{crate}]\n'
            f'network-access = {{ action = "permit", routes = [{listed}] }}\n')
    return load_text(text, file="cratecage.toml", base=tmp_path, where="top-level").resolve("build", crate, "0.1.0")


# -- pure parts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ip, port", [("127.0.0.1", 5432), ("::1", 80), ("10.1.2.3", 65535), ("fe80::1", 1)])
def test_socket_addresses_cross_as_twenty_byte_records(ip: str, port: int) -> None:
    raw = abi.encode_addr(ip, port)
    assert len(raw) == abi.ADDR_SIZE and abi.decode_addr(raw) == (ip, port)


@pytest.mark.parametrize("raw", [b"\x04\0\x50\0" + bytes(15), b"\x05\0\x50\0" + bytes(16),
                                 b"\x04\0\x50\0" + bytes(4) + b"\x01" + bytes(11), b"\x06\x01\0\0" + bytes(16)])
def test_a_malformed_address_record_is_refused(raw: bytes) -> None:
    with pytest.raises(abi.AddrError):
        abi.decode_addr(raw)


ADMITS = [
    # granted routes, address connected to, this run's lookups, the route that admits it (None: refused)
    (["127.0.0.1:5432"], ("127.0.0.1", 5432), {}, "127.0.0.1:5432"),
    (["127.0.0.1:*"], ("127.0.0.1", 8080), {}, "127.0.0.1:8080"),
    (["127.0.0.1:5432"], ("127.0.0.1", 5433), {}, None),
    (["127.0.0.1:5432"], ("127.0.0.2", 5432), {}, None),
    (["localhost:5432"], ("127.0.0.1", 5432), {"localhost": {"127.0.0.1", "::1"}}, "localhost:5432"),
    (["localhost:5432"], ("::1", 5432), {"localhost": {"127.0.0.1", "::1"}}, "localhost:5432"),
    (["localhost:5432"], ("127.0.0.2", 5432), {"localhost": {"127.0.0.1"}}, None),
    (["localhost:5432"], ("127.0.0.1", 5433), {"localhost": {"127.0.0.1"}}, None),
    (["db.example:*"], ("10.0.0.7", 1), {"db.example": {"10.0.0.7"}}, "db.example:1"),
    (["[::1]:80"], ("::1", 80), {}, "[::1]:80"),
    ([], ("127.0.0.1", 80), {"localhost": {"127.0.0.1"}}, None),
]


@pytest.mark.parametrize("routes, address, resolved, admitted", ADMITS)
def test_a_route_admits_its_address_and_a_granted_name_what_it_resolved_to(
        tmp_path: Path, routes: list[str], address: tuple[str, int], resolved: dict, admitted: str | None) -> None:
    assert host_net.admitting_route(grant(tmp_path, *routes), *address, resolved) == admitted


def test_deny_wins_over_a_name_that_resolved_to_a_denied_address(tmp_path: Path) -> None:
    text = ('[permissions]\ncurated-defaults = false\n[[permissions.build.guest]]\n'
            'network-access = { action = "permit", routes = ["localhost:80"] }\n'
            '[[permissions.build.guest]]\nnetwork-access = { action = "deny", routes = ["127.0.0.1:*"] }\n')
    denying = load_text(text, file="cratecage.toml", base=tmp_path, where="top-level").resolve("build", "guest", "1.0.0")
    assert host_net.admitting_route(denying, "127.0.0.1", 80, {"localhost": {"127.0.0.1"}}) is None
    assert host_net.admitting_route(denying, "::1", 80, {"localhost": {"::1"}}) == "localhost:80"


def context(tmp_path: Path, g, **fields) -> RunContext:  # type: ignore[no-untyped-def]
    return RunContext(crate="guest", version="0.1.0", package_dir=str(tmp_path), out_dir=str(tmp_path),
                      tmp_dir=str(tmp_path), env={}, host_env={}, rustc="rustc", sysroot="/", grant=g, **fields)


class Lookups:
    """A resolver that answers from a table and remembers every name it was asked: the DNS queries."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, name: str, port: int) -> list[str]:
        self.asked.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[name]


def test_a_name_no_route_names_is_denied_without_a_query(tmp_path: Path) -> None:
    lookups = Lookups({"db.example": ["10.0.0.7"], "other.example": ["10.0.0.8"]})
    table = host_net.NetTable(context(tmp_path, grant(tmp_path, "db.example:5432")), lookups)
    for name, port in (("other.example", 5432), ("db.example", 80)):
        with pytest.raises(HostCallError) as refused:
            table.addresses(name.encode(), port)
        assert refused.value.code == abi.E_DENIED
        assert f"network-access denied: {name}:{port}: {host_net.RESOLVE_REASON}" in refused.value.message
        assert f'network-access = {{ action = "permit", routes = ["{name}:{port}"] }}' in refused.value.message
    assert lookups.asked == []
    assert table.addresses(b"DB.example.", 5432) == {"10.0.0.7"} and lookups.asked == ["db.example"]
    assert table.addresses(b"10.9.9.9", 1) == ["10.9.9.9"] and lookups.asked == ["db.example"]


def test_a_connection_to_an_address_looks_up_only_granted_names_once(tmp_path: Path) -> None:
    lookups = Lookups({"db.example": ["10.0.0.7"]})
    table = host_net.NetTable(context(tmp_path, grant(tmp_path, "db.example:5432", "gone.example:5432",
                                                      "web.example:80")), lookups)
    assert table.admit("10.0.0.7", 5432) == "db.example:5432"
    with pytest.raises(HostCallError):
        table.admit("10.0.0.8", 5432)
    assert sorted(lookups.asked) == ["db.example", "gone.example"]
    assert [(d.capability, d.target) for d in table.ctx.denials] == [("network-access", "10.0.0.8:5432")]


def test_warn_mode_refuses_and_reports_with_the_entry(tmp_path: Path) -> None:
    """Warn mode reads any file; it must not also reach the network with it."""
    table = host_net.NetTable(context(tmp_path, grant(tmp_path, "127.0.0.1:1", mode="warn")), Lookups({}))
    with pytest.raises(HostCallError, match="network-access denied: 127.0.0.2:80"):
        table.admit("127.0.0.2", 80)
    assert table.ctx.denials[0].target == "127.0.0.2:80"
    assert 'routes = ["127.0.0.2:80"]' in table.ctx.denials[0].fix


def test_without_a_grant_nothing_is_admitted(tmp_path: Path) -> None:
    table = host_net.NetTable(context(tmp_path, None), Lookups({}))
    with pytest.raises(HostCallError, match=r"^cratecage: build script of guest 0.1.0: network-access denied"):
        table.admit("127.0.0.1", 80)


def test_the_deadline_caps_a_lookup(tmp_path: Path) -> None:
    def slow(name: str, port: int) -> list[str]:
        time.sleep(2)
        return ["10.0.0.7"]

    table = host_net.NetTable(context(tmp_path, grant(tmp_path, "db.example:1"),
                                      deadline=time.monotonic() + 0.3), slow)
    started = time.monotonic()
    with pytest.raises(HostCallError) as stopped:
        table.addresses(b"db.example", 1)
    assert stopped.value.code == abi.E_TIMED_OUT and time.monotonic() - started < 1.5


# -- guests against the facade ---------------------------------------------------------------------------

GUEST = r"""
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

fn show<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) {
    match result {
        Ok(value) => println!("{}\tok\t{:?}", what, value),
        Err(err) => println!("{}\t{:?}\t{}", what, err.kind(), err),
    }
}

fn exchange(mut stream: TcpStream) -> std::io::Result<String> {
    stream.write_all(b"hello\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

fn main() {
    let addr = std::env::var("ADDR").unwrap();
    match std::env::var("MODE").unwrap().as_str() {
        "str" => show("reply", TcpStream::connect(addr.as_str()).and_then(exchange)),
        "string" => show("reply", TcpStream::connect(addr.clone()).and_then(exchange)),
        "pair" => {
            let (host, port) = addr.rsplit_once(':').unwrap();
            show("reply", TcpStream::connect((host, port.parse::<u16>().unwrap())).and_then(exchange));
        }
        "socketaddr" => {
            let sa: SocketAddr = addr.parse().unwrap();
            show("reply", TcpStream::connect(&[sa][..]).and_then(exchange));
        }
        "resolve" => show("resolve", addr.to_socket_addrs().map(|i| i.collect::<Vec<_>>())),
        "api" => {
            let stream = TcpStream::connect(addr.as_str()).unwrap();
            show("peer", stream.peer_addr());
            show("local", stream.local_addr());
            show("set_nodelay", stream.set_nodelay(true));
            show("nodelay", stream.nodelay());
            show("read_timeout", stream.read_timeout());
            show("set_read_timeout", stream.set_read_timeout(Some(Duration::from_micros(1500))));
            show("read_timeout", stream.read_timeout());
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            show("zero", stream.set_write_timeout(Some(Duration::ZERO)));
            show("zero_connect", TcpStream::connect_timeout(&stream.peer_addr().unwrap(), Duration::ZERO).map(drop));
            let clone = stream.try_clone().unwrap();
            show("clone_timeout", clone.read_timeout());
            (&clone).write_all(b"via clone\n").unwrap();
            drop(clone);
            let mut buf = [0u8; 4];
            show("peek", stream.peek(&mut buf).map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()));
            let mut line = String::new();
            show("line", BufReader::new(&stream).read_line(&mut line).map(|_| line.trim().to_string()));
            show("shutdown", stream.shutdown(Shutdown::Write));
            let mut rest = Vec::new();
            show("rest", (&stream).read_to_end(&mut rest));
            show("debug", Ok(format!("{:?}", stream).starts_with("TcpStream { peer: ")));
        }
        "read_timeout" => {
            let stream = TcpStream::connect(addr.as_str()).unwrap();
            stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let started = Instant::now();
            show("read", (&stream).read(&mut [0u8; 16]));
            println!("elapsed\t{}", started.elapsed().as_millis());
        }
        "connect_timeout" => {
            let started = Instant::now();
            let sa: SocketAddr = addr.parse().unwrap();
            show("connect", TcpStream::connect_timeout(&sa, Duration::from_millis(300)).map(drop));
            println!("elapsed\t{}", started.elapsed().as_millis());
        }
        "block" => {
            let stream = TcpStream::connect(addr.as_str()).unwrap();
            let started = Instant::now();
            show("read", (&stream).read(&mut [0u8; 16]));
            println!("elapsed\t{}", started.elapsed().as_millis());
        }
        "leak" => {
            let mut stream = TcpStream::connect(addr.as_str()).unwrap();
            stream.write_all(b"leaked\n").unwrap();
            std::mem::forget(stream);
        }
        "listen" => {
            show("listen", TcpListener::bind(addr.as_str()).map(drop));
            show("udp", UdpSocket::bind(addr.as_str()).map(drop));
        }
        other => panic!("unknown mode {}", other),
    }
}
"""


@pytest.fixture(scope="module")
def guest(compiler: Compiler) -> Path:  # noqa: F811
    return compiler.wasm("netguest", GUEST)


def run(sandbox: Sandbox, wasm: Path, g, mode: str, addr: str, *, seconds: float = 30) -> Ran:  # noqa: F811  # type: ignore[no-untyped-def]
    ctx = sandbox.context(MODE=mode, ADDR=addr)
    ctx.grant = g
    ctx.deadline = time.monotonic() + seconds
    return sandbox.run(wasm, ctx)


def result(ran: Ran, what: str) -> list[str]:
    return next(line[1:] for line in ran.lines() if line[0] == what)


@pytest.mark.parametrize("mode", ["str", "string", "pair", "socketaddr"])
def test_a_granted_route_connects_with_every_form_of_address(sandbox: Sandbox, guest: Path, server: Server,  # noqa: F811
                                                             tmp_path: Path, mode: str) -> None:
    ran = run(sandbox, guest, grant(tmp_path, server.address), mode, server.address)
    assert result(ran, "reply") == ["ok", f'"{SECRET}"'], ran.stdout + ran.stderr
    assert ran.ctx.denials == [] and server.peer().received == b"hello\n"
    assert [(c.route, c.address) for c in ran.ctx.connections] == [(server.address, server.address)]


@pytest.mark.parametrize("routes, mode, addr, target", [
    ((), "str", "{addr}", "127.0.0.1:{port}"),
    (("127.0.0.1:1",), "str", "{addr}", "127.0.0.1:{port}"),
    (("127.0.0.1:{port}",), "str", "localhost:{port}", "localhost:{port}"),
    (("127.0.0.1:{port}",), "pair", "localhost:{port}", "localhost:{port}"),
    (("localhost:{port}",), "str", "127.0.0.2:{port}", "127.0.0.2:{port}"),
])
def test_a_route_not_granted_is_permission_denied_before_any_connection(
        sandbox: Sandbox, guest: Path, server: Server, tmp_path: Path,  # noqa: F811
        routes: tuple[str, ...], mode: str, addr: str, target: str) -> None:
    fill = {"addr": server.address, "port": server.port}
    ran = run(sandbox, guest, grant(tmp_path, *(r.format(**fill) for r in routes)), mode, addr.format(**fill))
    kind, message = result(ran, "reply")
    target = target.format(**fill)
    assert kind == "PermissionDenied"
    assert message.startswith(f"cratecage: build script of guest 0.1.0: network-access denied: {target}: ")
    assert f'network-access = {{ action = "permit", routes = ["{target}"] }}' in ran.stdout  # the next lines
    assert [(d.capability, d.target) for d in ran.ctx.denials] == [("network-access", target)]
    assert server.peers == [] and ran.ctx.connections == [] and SECRET not in ran.stdout + ran.stderr


def test_a_granted_name_connects_to_what_it_resolves_to(sandbox: Sandbox, guest: Path, server: Server,  # noqa: F811
                                                         tmp_path: Path) -> None:
    ran = run(sandbox, guest, grant(tmp_path, f"localhost:{server.port}"), "str", f"localhost:{server.port}")
    assert result(ran, "reply") == ["ok", f'"{SECRET}"'], ran.stdout
    assert {c.route for c in ran.ctx.connections} == {f"localhost:{server.port}"}
    assert ran.ctx.connections[-1].address == server.address


def test_resolving_answers_granted_names_and_literal_addresses(sandbox: Sandbox, guest: Path,  # noqa: F811
                                                              tmp_path: Path) -> None:
    g = grant(tmp_path, "localhost:80")
    assert "127.0.0.1:80" in result(run(sandbox, guest, g, "resolve", "localhost:80"), "resolve")[1]
    assert result(run(sandbox, guest, g, "resolve", "[::1]:81"), "resolve") == ["ok", "[[::1]:81]"]
    assert result(run(sandbox, guest, g, "resolve", "no-port"), "resolve") == ["InvalidInput", "invalid socket address"]
    assert result(run(sandbox, guest, g, "resolve", "x:port"), "resolve") == ["InvalidInput", "invalid port value"]
    denied = run(sandbox, guest, g, "resolve", "localhost:81")
    assert result(denied, "resolve")[0] == "PermissionDenied" and denied.ctx.denials[0].target == "localhost:81"


def test_the_stream_api_behaves_as_std_s(sandbox: Sandbox, guest: Path, server: Server, tmp_path: Path) -> None:  # noqa: F811
    ran = run(sandbox, guest, grant(tmp_path, server.address), "api", server.address)
    got = {line[0]: line[1:] for line in ran.lines()}
    assert got["peer"] == ["ok", server.address]
    assert got["local"] == ["ok", "0.0.0.0:0"]
    assert got["nodelay"] == ["ok", "true"]
    assert got["read_timeout"] == ["ok", "Some(2ms)"]  # the last one; rounded up to milliseconds
    assert got["zero"] == got["zero_connect"] == ["InvalidInput", "cannot set a 0 duration timeout"]
    assert got["clone_timeout"] == ["ok", "Some(10s)"]  # a clone shares the socket's options
    assert got["peek"] == ["ok", f'"{SECRET[:4]}"'] and got["line"] == ["ok", f'"{SECRET}"']
    assert got["shutdown"] == ["ok", "()"] and got["rest"] == ["ok", "0"] and got["debug"] == ["ok", "true"]
    assert server.peer().closed.wait(5) and server.peer().received == b"via clone\n"


def test_a_read_timeout_is_would_block_after_the_timeout(sandbox: Sandbox, guest: Path, silent: Server,  # noqa: F811
                                                        tmp_path: Path) -> None:
    ran = run(sandbox, guest, grant(tmp_path, silent.address), "read_timeout", silent.address)
    assert result(ran, "read") == ["WouldBlock", "cratecage: read timed out"]
    assert 250 <= int(result(ran, "elapsed")[0]) < 5000


def test_connect_timeout_gives_up_with_timed_out(sandbox: Sandbox, guest: Path, tmp_path: Path) -> None:  # noqa: F811
    full = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts: once its queue is full,
    port = full.getsockname()[1]  # the kernel drops further SYNs and a connect waits
    queued = [socket.create_connection(("127.0.0.1", port))]
    try:
        ran = run(sandbox, guest, grant(tmp_path, f"127.0.0.1:{port}"), "connect_timeout", f"127.0.0.1:{port}")
        assert result(ran, "connect") == ["TimedOut", "cratecage: connect timed out"]
        assert 250 <= int(result(ran, "elapsed")[0]) < 5000
    finally:
        for s in (*queued, full):
            s.close()


def test_a_blocking_read_ends_at_the_run_s_deadline(sandbox: Sandbox, guest: Path, silent: Server,  # noqa: F811
                                                   tmp_path: Path) -> None:
    ran = run(sandbox, guest, grant(tmp_path, silent.address), "block", silent.address, seconds=1.0)
    kind, message = result(ran, "read")
    assert kind == "TimedOut" and "time limit" in message
    assert int(result(ran, "elapsed")[0]) < 5000


def test_a_leaked_stream_is_closed_when_the_run_ends(sandbox: Sandbox, guest: Path, silent: Server,  # noqa: F811
                                                    tmp_path: Path) -> None:
    ran = run(sandbox, guest, grant(tmp_path, silent.address), "leak", silent.address)
    assert ran.code == 0 and silent.peer().closed.wait(5) and silent.peer().received == b"leaked\n"


def test_listening_and_udp_stay_unsupported_even_with_a_grant(sandbox: Sandbox, guest: Path,  # noqa: F811
                                                              tmp_path: Path) -> None:
    ran = run(sandbox, guest, grant(tmp_path, "127.0.0.1:*"), "listen", "127.0.0.1:0")
    assert result(ran, "listen")[0] == "Unsupported" and result(ran, "udp")[0] == "Unsupported"


# -- end to end: fixtures/net-demo built by cargo through the wrapper --------------------------------------

@pytest.fixture(scope="module")
def demo(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One copy of net-demo and one target directory: each build only reruns the script (the plan and the
    policy are files in the package, so editing them is a change cargo sees)."""
    root = tmp_path_factory.mktemp(f"net-demo-{cargo.layout}")
    shutil.copytree(FIXTURES / "net-demo", root / "pkg")
    return {"pkg": root / "pkg", "target": root / "target"}


def build_demo(cargo: Cargo, demo: dict[str, Path], plan: str, routes: tuple[str, ...] | None,  # noqa: F811
               env: dict[str, str] | None = None) -> CargoRun:
    (demo["pkg"] / "net-demo.txt").write_text(plan + "\n")
    policy = demo["pkg"] / "cratecage.toml"
    if routes is None:
        policy.unlink(missing_ok=True)
    else:
        listed = ", ".join(f'"{r}"' for r in routes)
        policy.write_text(f'[permissions.build.net-demo]\nnetwork-access = {{ action = "permit", routes = [{listed}] }}\n')
    return cargo(demo["pkg"], "build", wrapped=True, target_dir=demo["target"], extra_env=env, check=False)


def program_output(demo: dict[str, Path]) -> str:
    return subprocess.run([str(demo["target"] / "debug" / "net-demo")], capture_output=True, text=True,
                          timeout=60).stdout


REFUSED = [
    # (granted routes, plan, the refused target): {port} is the server's
    (None, "exchange 127.0.0.1:{port}", "127.0.0.1:{port}"),
    (("127.0.0.1:1",), "exchange 127.0.0.1:{port}", "127.0.0.1:{port}"),
    (("127.0.0.1:{port}",), "exchange localhost:{port}", "localhost:{port}"),
    (("localhost:{port}",), "exchange 127.0.0.2:{port}", "127.0.0.2:{port}"),
]
ALLOWED = [  # the harmless twins
    (("127.0.0.1:{port}",), "exchange 127.0.0.1:{port}", "127.0.0.1:{port}"),
    (("127.0.0.1:*",), "exchange 127.0.0.1:{port}", "127.0.0.1:{port}"),
    (("localhost:{port}",), "exchange localhost:{port}", "localhost:{port}"),
]


def fill(items, port: int):  # type: ignore[no-untyped-def]
    return None if items is None else tuple(item.format(port=port) for item in items)


@pytest.mark.integration
@pytest.mark.parametrize("routes, plan, target", REFUSED, ids=["no-grant", "other-port", "name-not-address",
                                                                "address-the-name-does-not-resolve-to"])
def test_a_build_script_reaching_an_ungranted_route_fails_with_the_entry_to_paste(
        cargo: Cargo, demo: dict, server: Server, routes, plan: str, target: str) -> None:  # noqa: F811
    target = target.format(port=server.port)
    run = build_demo(cargo, demo, plan.format(port=server.port), fill(routes, server.port))
    err = run.proc.stderr
    assert not run.ok
    assert f"net-demo: {plan.format(port=server.port)} failed: PermissionDenied: cratecage: " in err
    assert f"cratecage: build script of net-demo 0.1.0: network-access denied: {target}: " in err
    assert "[permissions.build.net-demo]" in err
    assert f'network-access = {{ action = "permit", routes = ["{target}"] }}' in err
    assert server.peers == [] and SECRET not in err + run.proc.stdout


@pytest.mark.integration
@pytest.mark.parametrize("routes, plan, route", ALLOWED, ids=["exact", "any-port", "granted-name"])
def test_a_granted_route_lets_the_script_talk_and_the_program_shows_the_reply(
        cargo: Cargo, demo: dict, server: Server, routes, plan: str, route: str) -> None:  # noqa: F811
    run = build_demo(cargo, demo, plan.format(port=server.port), fill(routes, server.port))
    assert run.ok, run.proc.stderr[-3000:]
    assert f"net-demo: {SECRET}" in run.proc.stderr  # the script's cargo:warning
    assert server.peer().closed.wait(5) and server.peer().received == b"hello from net-demo\n"
    assert program_output(demo).strip() == SECRET
    events = [json.loads(line) for line in (demo["target"] / "cratecage" / "audit.jsonl").read_text().splitlines()]
    last = [e for e in events if e["event"] == "connection"][-1]
    assert last["route"] == route.format(port=server.port) and last["address"] == server.address


@pytest.mark.integration
def test_a_leaked_stream_is_closed_when_the_script_ends(cargo: Cargo, demo: dict, silent: Server) -> None:  # noqa: F811
    run = build_demo(cargo, demo, f"leak {silent.address}", (silent.address,))
    assert run.ok, run.proc.stderr[-3000:]
    assert silent.peer().received == b"leaked\n" and silent.peer().closed.wait(5)


@pytest.mark.integration
def test_a_build_script_cannot_listen_even_with_a_grant(cargo: Cargo, demo: dict) -> None:  # noqa: F811
    run = build_demo(cargo, demo, "listen 127.0.0.1:0", ("127.0.0.1:*",))
    assert not run.ok
    assert "net-demo: listen 127.0.0.1:0 failed: Unsupported: " in run.proc.stderr


@pytest.mark.integration
def test_a_script_waiting_on_a_silent_server_stops_at_the_time_limit_not_later(
        cargo: Cargo, demo: dict, silent: Server) -> None:  # noqa: F811
    started = time.monotonic()
    run = build_demo(cargo, demo, f"exchange {silent.address}", (silent.address,), {"CRATECAGE_LIMIT_TIME": "2s"})
    err = run.proc.stderr
    # The read ends at the deadline; the script sees why, or is stopped by the epoch first.
    assert not run.ok and ("TimedOut: cratecage: read was stopped at the build script's time limit" in err
                           or "net-demo 0.1.0 stopped: ran longer than 2 s" in err), err[-3000:]
    assert "inside a host call" not in err  # the watchdog never had to step in
    assert silent.peer().closed.wait(5) and time.monotonic() - started < 30
