"""Serving speed and safety with `llmci deploy` on a local Ray head, each against a baseline measured here.

On the quickstart's tiny model (built from the example data, no download),
with requests like the quickstart's: a ticket rendered through the version's
prompt template, 4 new tokens.

a. Throughput at 32 concurrent clients: batched (max_batch_size 32) vs
   max_batch_size 1, both through Serve. Target >= 3x.
b. Batched Serve throughput vs an in-process loop calling the same generator on
   batches of the same size with the same thread count (the limit here). Target >= 0.7x.
   Printed a second time, without a target, for a larger model (same tokenizer,
   6 layers x 384): there generation, not Serve's per-request hops, takes the time.
c. A constant request rate through a v1 -> v2 canary to 100% and an automatic
   rollback of v3: failed requests (target 0 of >= 1,000) and p99 latency against
   the steady state measured before (target <= 3x).
d. Seconds from the gate's breach (its ledger entry) to the last answer from the
   breaching version: from then on all traffic is on the previous one. Target <= 30 s.

    .venv/bin/python benchmarks/bench_serve.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
CLIENTS = 32
BATCH = 32
SECONDS = 15.0
BODY = {
    "model": "ticket-router",
    "vars": {"ticket": "My invoice for February shows $7 but my plan costs less.", "labels": ["billing", "bug"]},
    "max_tokens": 4,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llmci(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("llmci")), *args], cwd=root, capture_output=True, text=True, timeout=900
    )


def project(tmp: Path) -> tuple[Path, int]:
    spec = importlib.util.spec_from_file_location("build_base_model", QUICKSTART / "build_base_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp / "project"
    for name in ("prompts", "data"):
        shutil.copytree(QUICKSTART / name, root / name)
    port = free_port()
    common = {"http_port": port, "ray_actor_options": {"num_cpus": 1}}
    environments = {
        "batched": {**common, "max_batch_size": BATCH, "batch_wait_timeout_s": 0.02},
        "single": {**common, "max_batch_size": 1},
        "large": {**common, "max_batch_size": BATCH, "batch_wait_timeout_s": 0.02},
        "canary": {**common, "canary": [10, 50, 100], "step_seconds": 10, "max_batch_size": BATCH},
        "gated": {
            **common,
            "canary": [50, 100],
            "step_seconds": 30,
            "max_batch_size": BATCH,
            "gates": {"max_p95_ms": 1, "min_requests": 20},
        },
    }
    config = {"registry": {"uri": "file://.llmci/registry"}, "deploy": {"environments": environments}}
    (root / "llmci.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML (and has no anchors)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    model = module.main(tmp / "base-model")
    from llmci.config import load_config
    from llmci.registry import open_registry
    from llmci.serve.generator import PROMPT_FILE
    from llmci.templating import bundle_template

    (model / PROMPT_FILE).write_text(json.dumps(bundle_template(root, "prompts/classify.j2")))
    registry = open_registry(load_config(root / "llmci.yaml"))
    for version in (1, 2, 3):
        (model / "release.txt").write_text(f"{version}\n")
        ref = registry.publish(model, "ticket-router").manifest.ref
        registry.approve(ref, by="bench", note="bench")
    ref = registry.publish(larger(model, tmp / "large-model"), "ticket-router").manifest.ref  # version 4
    registry.approve(ref, by="bench", note="bench")
    return root, port


def larger(model: Path, out: Path) -> Path:
    """The tiny model's tokenizer and prompt template on a GPT-2 of 6 layers x 384 (random weights)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    shutil.copytree(model, out)
    config = GPT2Config.from_pretrained(model)
    config.n_layer, config.n_embd, config.n_head = 6, 384, 6
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


def throughput(url: str, seconds: float, *, healthz: bool = False) -> float:
    """Requests/s that CLIENTS concurrent clients complete in `seconds` (each sends when its last is answered);
    with `healthz`, GET /-/healthz: the proxy and router alone, no model.

    The load generator shares the 2 cores with what it measures, so it is as lean as `wrk`: one coroutine
    per keep-alive connection on one event loop, writing a request encoded once and reading the status
    line, the headers and Content-Length bytes of body. (Through the proxy and router alone it reached
    639 req/s where httpx clients reached 340 and aiohttp's 525: the rest was the clients' own CPU.)
    """
    target = urlsplit(url)
    if healthz:
        request = f"GET {target.path.removesuffix('/v1')}/-/healthz HTTP/1.1\r\nHost: {target.netloc}\r\n\r\n".encode()
    else:
        body = json.dumps(BODY).encode()
        head = (
            f"POST {target.path}/completions HTTP/1.1\r\nHost: {target.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode() + body

    async def client(stop: asyncio.Event, done: list[int]) -> None:
        reader, writer = await asyncio.open_connection(target.hostname, target.port)
        try:
            while not stop.is_set():
                writer.write(request)
                status = (await reader.readline()).split(b" ", 2)[1]
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if status != b"200":
                    raise RuntimeError(f"{url} answered {status.decode()}")
                done[0] += 1
        finally:
            writer.close()

    async def run() -> float:
        done, stop = [0], asyncio.Event()
        tasks = [asyncio.create_task(client(stop, done)) for _ in range(CLIENTS)]
        await asyncio.sleep(2.0)  # warm up: connections open, batches forming
        before, started = done[0], time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (done[0] - before) / (time.perf_counter() - started)
        stop.set()
        await asyncio.gather(*tasks)
        return rate

    return asyncio.run(run())


def in_process(model: Path, seconds: float) -> float:
    from llmci.serve.generator import Generator
    from llmci.serve.protocol import parse

    generator = Generator(model, threads=1)
    request = parse("/v1/completions", BODY)
    prompt = generator.prompt(request)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        generator.generate([request] * BATCH, [prompt] * BATCH)
        count += BATCH
    return count / (time.perf_counter() - started)


class Steady:
    """Requests at a constant rate (every answer recorded: time sent, status, version, latency)."""

    def __init__(self, url: str, rate: float) -> None:
        self.url, self.interval = f"{url}/completions", 1.0 / rate
        self.answers: list[tuple[float, int, str | None, float]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(8)]

    def run(self, index: int) -> None:
        next_at = time.monotonic() + index * self.interval
        with httpx.Client(timeout=60) as http:
            while not self.stop.is_set():
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += self.interval * len(self.threads)
                sent, started = time.time(), time.perf_counter()
                try:
                    response = http.post(self.url, json=BODY)
                    status, version = response.status_code, response.headers.get("x-llmci-model-version")
                except httpx.HTTPError:
                    status, version = 0, None
                self.answers.append((sent, status, version, time.perf_counter() - started))

    def __enter__(self) -> Steady:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(0.99 * (len(ordered) - 1))]


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="llmci-bench-serve-"))
    root, port = project(tmp)
    ok = True
    try:
        for env in ("batched", "single", "canary", "gated"):
            result = llmci(root, "deploy", "ticket-router@1", "--env", env)
            assert result.returncode == 0, result.stderr
        result = llmci(root, "deploy", "ticket-router@4", "--env", "large")
        assert result.returncode == 0, result.stderr
        base = f"http://127.0.0.1:{port}"

        batched = throughput(f"{base}/batched/v1", SECONDS)
        single = throughput(f"{base}/single/v1", SECONDS)
        ratio = batched / single
        ok &= ratio >= 3
        print(
            f"a. {CLIENTS} clients: batched {batched:.1f} req/s, max_batch_size=1 {single:.1f} req/s: "
            f"{ratio:.2f}x (target >= 3x) {'PASS' if ratio >= 3 else 'FAIL'}"
        )

        local = in_process(tmp / "base-model", SECONDS)
        hops = throughput(f"{base}/batched/v1", SECONDS, healthz=True)
        share = batched / local
        ok &= share >= 0.7
        print(
            f"b. Serve batched {batched:.1f} req/s vs in-process batches of {BATCH} {local:.1f} req/s: "
            f"{share:.2f}x (target >= 0.7x) {'PASS' if share >= 0.7 else 'FAIL'}; "
            f"proxy + router alone (GET /-/healthz, no model) {hops:.1f} req/s"
        )

        rate = 20.0
        with Steady(f"{base}/canary/v1", rate) as steady:
            time.sleep(20)
        steady_p99 = p99([latency for _, status, _, latency in steady.answers if status == 200])
        with Steady(f"{base}/canary/v1", rate) as canary:
            result = llmci(root, "deploy", "ticket-router@2", "--env", "canary")
            assert result.returncode == 0, result.stderr
        with Steady(f"{base}/gated/v1", rate) as rollback:
            time.sleep(3)
            result = llmci(root, "deploy", "ticket-router@3", "--env", "gated")
            assert result.returncode == 11, result.stderr
            time.sleep(3)
        answers = canary.answers + rollback.answers
        failed = sum(status != 200 for _, status, _, _ in answers)
        worst = p99([latency for _, status, _, latency in answers if status == 200])
        ok &= failed == 0 and len(answers) >= 1000 and worst <= 3 * steady_p99
        print(
            f"c. canary v1 -> v2 and rollback of v3 at {rate:.0f} req/s: {failed} failed of {len(answers)}; "
            f"p99 {worst * 1000:.0f} ms vs steady {steady_p99 * 1000:.0f} ms = {worst / steady_p99:.2f}x "
            f"(targets 0 of >= 1000, <= 3x) {'PASS' if failed == 0 and worst <= 3 * steady_p99 else 'FAIL'}"
        )

        history = json.loads(llmci(root, "deploy", "history", "--env", "gated", "--json").stdout)
        breach = next(e for e in history if e["action"] == "gate" and not e["details"]["passed"])
        breached_at = datetime.fromisoformat(breach["at"]).timestamp()
        last_v3 = max(sent + latency for sent, _, version, latency in rollback.answers if version == "ticket-router@3")
        seconds = max(0.0, last_v3 - breached_at)
        ok &= seconds <= 30
        print(
            f"d. gate breach -> 100% of traffic on ticket-router@1: {seconds:.1f} s (target <= 30 s) "
            f"{'PASS' if seconds <= 30 else 'FAIL'}"
        )

        large = throughput(f"{base}/large/v1", SECONDS)
        large_local = in_process(tmp / "large-model", SECONDS)
        print(
            f"b'. a larger model (6 layers x 384, no target): Serve batched {large:.1f} req/s vs in-process "
            f"batches of {BATCH} {large_local:.1f} req/s: {large / large_local:.2f}x"
        )
    finally:
        from llmci.deploy import local_head

        local_head.stop(root)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
