"""An async body run on its own event loop in a thread of the test process (the controllers,
the fake kubelet), so blocking test code can drive it; stop() ends it and joins."""
from __future__ import annotations

import asyncio
import threading


class LoopThread:
    """Subclasses implement `body(stop)` and call `self.started()` once they are ready (the
    constructor waits for that); an exception the body raises is kept in `error`."""

    name = "loop-thread"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._started.wait(10)

    async def body(self, stop: asyncio.Event) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def started(self) -> None:
        self._started.set()

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.body(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the caller (stop() or the fixture)
            self.error = exc

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(15)
        assert not self._thread.is_alive(), f"{self.name} did not stop"
