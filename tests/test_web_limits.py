"""The body limit over a real socket: a client that keeps sending an over-size body to its
end still reads a clean 413, not a connection reset (the server keeps the connection and
drops the rest of the body rather than closing on unread data)."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from app.admission.pinner import Policy
from app.admission.service import Admission
from app.metrics import Metrics
from app.web.app import MAX_BODY_BYTES, create_app
from devkit.localwebhook import free_port
from tests.fakes import MemorySources


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    metrics = Metrics()
    app = create_app(
        Admission(MemorySources(), Policy(key=b"k" * 32), metrics), metrics, lambda: True
    )
    chosen = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=chosen, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield chosen
    server.should_exit = True
    thread.join(10)


def post_all(port: int, size: int, declare_length: bool) -> bytes:
    """Send a `size`-byte body to the end, whatever the server does meanwhile, then read
    the whole answer."""
    head = "POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {size}\r\n" if declare_length else "Transfer-Encoding: chunked\r\n"
    chunk = b" " * (256 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n")
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            sock.sendall(piece if declare_length else b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        if not declare_length:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        return answer


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
def test_an_over_size_body_sent_to_the_end_gets_a_clean_413(
    port: int, declare_length: bool
) -> None:
    answer = post_all(port, MAX_BODY_BYTES + 2 * 1024 * 1024, declare_length)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than" in answer
