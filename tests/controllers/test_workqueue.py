"""WorkQueue guarantees: dedup while queued, no concurrent processing of one key, re-queue
after done(), per-key exponential rate limiting, shutdown wakes workers."""
from __future__ import annotations

import asyncio

from kproxy.controllers.workqueue import WorkQueue


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_dedup_while_queued():
    async def main():
        q = WorkQueue()
        for k in ("a", "b", "a", "a"):
            q.add(k)
        assert len(q) == 2
        assert [await q.get(), await q.get()] == ["a", "b"]

    run(main())


def test_key_added_while_processing_is_requeued_after_done():
    async def main():
        q = WorkQueue()
        q.add("a")
        key = await q.get()
        q.add("a")  # while being processed: must not be handed out concurrently
        assert len(q) == 0
        q.done(key)
        assert len(q) == 1
        assert await q.get() == "a"

    run(main())


def test_rate_limited_delays_grow_and_forget_resets():
    async def main():
        q = WorkQueue(base_delay=0.01, max_delay=0.04)
        delays = [q.add_rate_limited("a") for _ in range(4)]
        assert delays == [0.01, 0.02, 0.04, 0.04]
        assert await q.get() == "a"  # arrives after its delay
        q.done("a")
        q.forget("a")
        assert q.failures("a") == 0
        assert q.add_rate_limited("a") == 0.01

    run(main())


def test_shutdown_wakes_waiting_workers():
    async def main():
        q = WorkQueue()
        waiters = [asyncio.create_task(q.get()) for _ in range(3)]
        await asyncio.sleep(0)
        q.shutdown()
        assert await asyncio.gather(*waiters) == [None, None, None]
        q.add("late")
        assert len(q) == 0

    run(main())
