"""Fixtures of the cluster credential tests: a loopback socket that records whatever reaches it,
and kubeconfig documents built as data."""
import socket
import threading

import pytest
import yaml


class Listener:
    """A TCP port on loopback that accepts every connection and keeps the bytes it receives:
    whatever a kubeconfig would make us send (a token, a TLS hello, a proxy CONNECT) shows here."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def received(self) -> bytes:
        return bytes(self._received)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    while chunk := conn.recv(65536):
                        self._received += chunk
                        if b"\r\n\r\n" in self._received:  # a whole HTTP head: answer and close
                            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                            break
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def kubeconfig(server: str, user: dict, cluster: dict | None = None) -> str:
    """A one-context kubeconfig: cluster 'target' at `server`, user 'someone'."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "target", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "someone", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "target", "user": "someone"}}],
    })
