"""The limit: the same POSTs by a bare client pool, with no hub logic at all."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
import urllib3
from requests.adapters import HTTPAdapter

Job = tuple[str, bytes, Mapping[str, str]]
"""(url, body, headers): the very request the hub sends, headers included (DESIGN.md's)."""


@dataclass(frozen=True)
class Run:
    deliveries: int
    wall: float
    cpu: float
    errors: int = 0

    @property
    def per_second(self) -> float:
        return self.deliveries / self.wall if self.wall else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.deliveries * 1e6 if self.deliveries else 0.0


def _timed(post: Callable[[Job], int], jobs: Sequence[Job], pool: ThreadPoolExecutor) -> Run:
    wall, cpu = time.perf_counter(), time.process_time()
    statuses = list(pool.map(post, jobs))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Run(len(jobs), wall, cpu, sum(1 for status in statuses if not 200 <= status < 300))


def urllib3_run(jobs: Sequence[Job], warmup: Sequence[Job], concurrency: int) -> Run:
    manager = urllib3.PoolManager(num_pools=64, maxsize=concurrency, retries=False)

    def post(job: Job) -> int:
        url, body, headers = job
        response = manager.request("POST", url, body=body, headers=headers)
        return int(response.status)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(post, warmup))
        run = _timed(post, jobs, pool)
    manager.clear()
    return run


def requests_run(jobs: Sequence[Job], warmup: Sequence[Job], concurrency: int) -> Run:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=64, pool_maxsize=concurrency, max_retries=0)
    session.mount("http://", adapter)

    def post(job: Job) -> int:
        url, body, headers = job
        return session.post(url, data=body, headers=headers, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(post, warmup))
        run = _timed(post, jobs, pool)
    session.close()
    return run
