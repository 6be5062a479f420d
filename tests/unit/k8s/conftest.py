"""Fixtures of the k8s unit tests: the scripted API server of ``fakeapi.py`` and fake time."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.k8s.client import Kube
from k3smig_lib.k8s.retry import RetryPolicy

sys.path.insert(0, str(Path(__file__).parent))  # tests are not a package
from fakeapi import FakeApiServer, FakeTime, api_for, start_server  # noqa: E402


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    """A scripted API server on a free 127.0.0.1 port, stopped after the test."""
    api, httpd = start_server()
    yield api
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_kube(apiserver: FakeApiServer, fake_time: FakeTime) -> Callable[..., Kube]:
    """``make_kube(side="target", policy=..., rand=...)``: a transport to the scripted server on fake time."""

    def make(side: str = "target", policy: RetryPolicy | None = None, rand: Callable[[], float] = lambda: 0.5,
             **kw: Any) -> Kube:
        return Kube(api_for(apiserver.url), side=side, context="k3s-vm", policy=policy or RetryPolicy(),
                    sleep=fake_time.sleep, clock=fake_time.clock, rand=rand, **kw)

    return make
