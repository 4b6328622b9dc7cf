"""Requests gathered into batches that grow with the load.

The router sends a version its requests in batches: one Ray call per batch
instead of one per request, and the model generates each batch in one
`generate`. `serve.batch` does not fit here: it forms a new batch every
`batch_wait_timeout_s` even while earlier ones still run (they queue behind
`max_concurrent_batches`), so under load its batches stay as small as what
arrives in one timeout (2.4 on average at 32 clients on 2 cores). A `Batcher`
forms a batch only when one of its `concurrency` slots is free: what arrived
while the slots were busy goes together, up to `max_size`. A request that
finds the batcher idle waits up to `wait_s` for company.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_size: int,
        wait_s: float,
        concurrency: int,
    ) -> None:
        self.send = send
        self.max_size = max_size
        self.wait_s = wait_s
        self.free = concurrency
        self.waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self.arrived = asyncio.Event()
        self.forming = False  # a batch is waiting for company: later arrivals join it
        self.tasks: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps only weak ones)

    async def __call__(self, item: Item) -> Result:
        """The result for `item`, sent with whatever else is waiting (the exception of its batch, if it failed)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        self.arrived.set()
        if self.free and not self.forming:
            self.free -= 1
            # A context of its own: the batches it sends belong to no one request (Ray Serve cancels a
            # request's calls when its client goes away).
            task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _run(self) -> None:
        """Send batches until nothing waits, in one slot; an idle start waits `wait_s` for company first."""
        try:
            await self._gather()
            while self.waiting:
                self.waiting = [(item, future) for item, future in self.waiting if not future.done()]  # gone
                batch, self.waiting = self.waiting[: self.max_size], self.waiting[self.max_size :]
                if batch:
                    await self._send(batch)
        finally:
            self.free += 1

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        self.forming = True
        try:
            while len(self.waiting) < self.max_size and (left := deadline - loop.time()) > 0:
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), left)
                except TimeoutError:
                    return
        finally:
            self.forming = False

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
        except BaseException as exc:  # the whole batch failed: each caller gets the reason, none waits forever
            failure = RuntimeError("the batch was cancelled") if isinstance(exc, asyncio.CancelledError) else exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            task = asyncio.current_task()
            stopped = isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling()
            if stopped or not isinstance(exc, (Exception, asyncio.CancelledError)):
                raise  # this batcher itself is being stopped (shutdown), not just the call it made
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # a caller that went away (client disconnected) has a cancelled future
                future.set_result(result)
