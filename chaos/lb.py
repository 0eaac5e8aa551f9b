"""A TCP load balancer on loopback in front of the webhook replicas, as a Service's
kube-proxy rules would be: each new connection goes to the next replica in turn that
accepts it, and bytes pass through untouched (TLS ends at the replica, which all serve
the same certificate). A connection in flight to a replica that dies is cut, as it would
be in a cluster."""

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Sequence

CONNECT_TIMEOUT_SECONDS = 1.0
CHUNK = 65536


class LoadBalancer:
    def __init__(self, backends: Sequence[int]) -> None:
        self.backends = list(backends)  # ports on 127.0.0.1
        self.port = 0
        self.connections: Counter[int] = Counter()  # by backend port
        self.refused = 0  # connections no backend accepted
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lb", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            # Closing: cancelled on purpose. Returning ends the task normally, which spares
            # the stream protocol's callback (Python 3.11) logging it as an error.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in self.backends:
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError):
                continue  # that replica is down: the next one
            self.connections[port] += 1
            up_reader, up_writer = upstream
            try:
                pipes = {
                    asyncio.ensure_future(_pipe(reader, up_writer)),
                    asyncio.ensure_future(_pipe(up_reader, writer)),
                }
                # Either side closing or failing ends the connection: a request cut by a
                # dying replica is seen as cut by the caller.
                _, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
                for pipe in pending:
                    pipe.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            finally:
                up_writer.close()
            return
        self.refused += 1


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
