"""A listener on a loopback port for tests of connections a sandbox must refuse (and their granted twins):
it counts the connections it accepts and sends each one `payload` (a canary the guest must never get), then
closes it. tests/host/test_net.py's `Server`, which talks with each peer, is the richer one."""

from __future__ import annotations

import socket
import threading


class Listener:
    def __init__(self, payload: bytes = b"") -> None:
        self.payload = payload
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            with conn:
                if self.payload:
                    conn.sendall(self.payload)

    def close(self) -> None:
        self.sock.close()
