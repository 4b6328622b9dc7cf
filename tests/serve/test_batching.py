"""The router's batcher: batches grow while the version is busy, a lone request waits only `wait_s`."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmci.serve.batching import Batcher


class Version:
    """A model that takes `seconds` per batch and answers each item doubled; remembers its batches."""

    def __init__(self, seconds: float = 0.05, fail: bool = False) -> None:
        self.seconds, self.fail = seconds, fail
        self.batches: list[list[int]] = []
        self.in_flight = self.most_in_flight = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)
            if self.fail:
                raise RuntimeError("the replica died")
            return [item * 2 for item in items]
        finally:
            self.in_flight -= 1


def test_batches_grow_with_the_load_and_answers_keep_their_order() -> None:
    version = Version(seconds=0.05)

    async def run() -> list[int]:
        batcher = Batcher(version, max_size=16, wait_s=0.001, concurrency=1)
        calls = []
        for item in range(40):  # arrive over ~0.2 s while batches take 0.05 s each
            calls.append(asyncio.ensure_future(batcher(item)))
            await asyncio.sleep(0.005)
        return await asyncio.gather(*calls)

    assert asyncio.run(run()) == [item * 2 for item in range(40)]
    # serve.batch would send ~one request per wait_s here; this batcher sends what arrived meanwhile.
    assert len(version.batches) <= 8
    assert max(len(batch) for batch in version.batches) >= 8
    assert sorted(item for batch in version.batches for item in batch) == list(range(40))


def test_no_batch_is_larger_than_max_size_and_slots_bound_the_calls_in_flight() -> None:
    version = Version(seconds=0.02)

    async def run() -> None:
        batcher = Batcher(version, max_size=4, wait_s=0.0, concurrency=2)
        await asyncio.gather(*(batcher(item) for item in range(30)))

    asyncio.run(run())
    assert max(len(batch) for batch in version.batches) == 4
    assert version.most_in_flight == 2


def test_a_lone_request_waits_for_company_only_wait_s() -> None:
    version = Version(seconds=0.0)

    async def run() -> float:
        batcher = Batcher(version, max_size=8, wait_s=0.05, concurrency=2)
        started = time.perf_counter()
        assert await batcher(21) == 42
        return time.perf_counter() - started

    assert 0.04 <= asyncio.run(run()) < 0.5
    assert version.batches == [[21]]


def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_still_goes() -> None:
    version = Version(seconds=0.01, fail=True)

    async def run() -> None:
        batcher = Batcher(version, max_size=8, wait_s=0.0, concurrency=1)
        results = await asyncio.gather(*(batcher(item) for item in range(3)), return_exceptions=True)
        assert all(isinstance(result, RuntimeError) and "died" in str(result) for result in results)
        version.fail = False
        assert await batcher(5) == 10

    asyncio.run(run())


def test_a_caller_that_went_away_does_not_stop_the_others() -> None:
    version = Version(seconds=0.05)

    async def run() -> list[int]:
        batcher = Batcher(version, max_size=8, wait_s=0.01, concurrency=1)
        gone = asyncio.ensure_future(batcher(1))
        kept = asyncio.ensure_future(batcher(2))
        await asyncio.sleep(0.02)
        gone.cancel()
        return [await kept]

    assert asyncio.run(run()) == [4]


@pytest.mark.parametrize("wrong", [[], [1, 2, 3]])
def test_a_version_that_answers_the_wrong_number_fails_the_batch(wrong: list[int]) -> None:
    async def answer(items: list[int]) -> list[int]:
        return wrong

    async def run() -> None:
        batcher = Batcher(answer, max_size=8, wait_s=0.0, concurrency=1)
        with pytest.raises(RuntimeError, match="a batch of 1 got"):
            await batcher(1)

    asyncio.run(run())


def test_a_cancelled_call_fails_its_batch_instead_of_hanging_it_and_the_batcher_goes_on() -> None:
    """Ray Serve cancels a call whose request went away: the other requests of its batch must still end."""
    cancelled = [False]

    async def answer(items: list[int]) -> list[int]:
        if not cancelled[0]:
            cancelled[0] = True
            raise asyncio.CancelledError
        return [item * 2 for item in items]

    async def run() -> None:
        batcher = Batcher(answer, max_size=8, wait_s=0.01, concurrency=1)
        results = await asyncio.wait_for(
            asyncio.gather(*(batcher(item) for item in range(4)), return_exceptions=True), 2
        )
        assert all(isinstance(r, RuntimeError) and "cancelled" in str(r) for r in results), results
        assert await asyncio.wait_for(batcher(5), 2) == 10

    asyncio.run(run())


def test_the_batches_run_in_a_context_of_their_own() -> None:
    """A batch is sent on behalf of every request in it: it must not carry the first caller's context."""
    import contextvars

    caller = contextvars.ContextVar("caller", default=None)
    seen: list[object] = []

    async def answer(items: list[int]) -> list[int]:
        seen.append(caller.get())
        return items

    async def one(item: int, batcher: Batcher) -> int:
        caller.set(f"request-{item}")
        return await batcher(item)

    async def run() -> None:
        batcher = Batcher(answer, max_size=8, wait_s=0.01, concurrency=1)
        await asyncio.gather(*(one(item, batcher) for item in range(3)))

    asyncio.run(run())
    assert seen == [None]
