"""Readiness predicates against YAML fixtures, and the one waiter on a fake monotonic clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from k3smig_lib.core.objects import Obj, ObjRef
from k3smig_lib.errors import FatalError, RetryableError
from k3smig_lib.k8s.readiness import READINESS_PREDICATES, service_has_endpoints, summary, wait_until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "k8s" / "readiness"


def cases(*files: str) -> list[Any]:
    out = []
    for name in files:
        for case in yaml.safe_load((FIXTURES / name).read_text()):
            out.append(pytest.param(case, id=case["name"]))
    return out


SINGLE = ("deployments.yaml", "statefulsets.yaml", "daemonsets.yaml", "jobs.yaml", "pvcs.yaml", "ingresses.yaml",
          "certificates.yaml", "crds.yaml")


@pytest.mark.parametrize("case", cases(*SINGLE))
def test_predicate_of_the_kind_says_whether_the_fixture_is_ready(case: dict[str, Any]) -> None:
    obj = case["object"]
    assert READINESS_PREDICATES[obj["kind"]](obj) is case["ready"]


@pytest.mark.parametrize("case", cases("services.yaml"))
def test_service_has_endpoints_reads_its_own_endpoint_slices(case: dict[str, Any]) -> None:
    assert service_has_endpoints(case["object"], case["slices"]) is case["ready"]


def test_every_fixture_kind_has_a_ready_and_a_not_ready_case() -> None:
    for name in SINGLE + ("services.yaml",):
        outcomes = {c["ready"] for c in yaml.safe_load((FIXTURES / name).read_text())}
        assert outcomes == {True, False}, name


class FakeClock:
    """Monotonic seconds that only move when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def rolling(available: int, want: int = 2) -> Obj:
    return {"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "generation": 1},
            "spec": {"replicas": want},
            "status": {"observedGeneration": 1, "replicas": want, "updatedReplicas": want,
                       "availableReplicas": available}}


def test_waiter_returns_the_ready_object_without_sleeping() -> None:
    clock = FakeClock()
    ready = rolling(2)
    assert wait_until(lambda: ready, READINESS_PREDICATES["Deployment"], 300, clock=clock, sleep=clock.sleep) is ready
    assert clock.sleeps == []


def test_waiter_polls_until_the_deployment_becomes_available() -> None:
    clock = FakeClock()
    states = iter([rolling(0), rolling(1), rolling(2)])
    got = wait_until(lambda: next(states), READINESS_PREDICATES["Deployment"], 300, 5, clock=clock, sleep=clock.sleep)
    assert got is not None and got["status"]["availableReplicas"] == 2
    assert clock.sleeps == [5, 5]


def test_waiter_times_out_on_the_monotonic_clock_naming_object_and_progress() -> None:
    clock = FakeClock()
    polls: list[float] = []

    def fetch() -> Obj:
        polls.append(clock.now)
        return rolling(1)

    with pytest.raises(FatalError, match=r"^deployment/web in ns shop is not ready after 300s: 1/2 available \(to "
                                         r"fix this, "):
        wait_until(fetch, READINESS_PREDICATES["Deployment"], 300, 60, clock=clock, sleep=clock.sleep)
    assert polls == [1000, 1060, 1120, 1180, 1240, 1300]  # the last poll lands on the deadline, not past it
    assert clock.now == 1300


def test_waiter_does_not_overshoot_when_interval_does_not_divide_timeout() -> None:
    clock = FakeClock()
    with pytest.raises(FatalError):
        wait_until(lambda: rolling(0), READINESS_PREDICATES["Deployment"], 10, 4, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [4, 4, 2]


def test_waiter_in_plan_only_mode_returns_at_once_without_fetching() -> None:
    def fetch() -> Obj:
        raise AssertionError("a dry run must not read the cluster")

    assert wait_until(fetch, READINESS_PREDICATES["Deployment"], 300, plan_only=True) is None


def test_waiter_keeps_polling_through_transient_api_errors() -> None:
    clock = FakeClock()
    answers: list[Any] = [RetryableError("503 Service Unavailable"), rolling(2)]

    def fetch() -> Obj:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    assert wait_until(fetch, READINESS_PREDICATES["Deployment"], 30, 1, clock=clock, sleep=clock.sleep) is not None


def test_waiter_names_the_last_transient_error_when_it_never_recovers() -> None:
    clock = FakeClock()

    def fetch() -> Obj:
        raise RetryableError("429 Too Many Requests")

    with pytest.raises(FatalError, match=r"pvc/data in ns shop is not ready after 6s: not found; last error: 429"):
        wait_until(fetch, READINESS_PREDICATES["PersistentVolumeClaim"], 6, 2, clock=clock, sleep=clock.sleep,
                   subject=ObjRef("PVC", "shop", "data"))


def test_waiter_for_a_missing_object_says_not_found() -> None:
    clock = FakeClock()
    with pytest.raises(FatalError, match=r"job/migrate in ns shop is not ready after 1s: not found"):
        wait_until(lambda: None, lambda o: o is not None, 1, 1, clock=clock, sleep=clock.sleep,
                   subject=ObjRef("Job", "shop", "migrate"))


def test_summary_of_a_service_counts_its_ready_endpoints() -> None:
    case = yaml.safe_load((FIXTURES / "services.yaml").read_text())[1]
    assert summary((case["object"], case["slices"])) == "0 ready endpoints"


def test_summary_of_a_failed_job_names_the_failed_condition() -> None:
    job = yaml.safe_load((FIXTURES / "jobs.yaml").read_text())[2]["object"]
    assert summary(job) == "condition Failed=True (BackoffLimitExceeded)"


def test_waits_sharing_one_deadline_name_the_configured_timeout() -> None:
    clock = FakeClock()
    deadline = clock() + 10
    clock.sleep(7.25)  # an earlier wait used most of the budget
    with pytest.raises(FatalError, match=r"pvc/data in ns shop is not ready after 10s: phase Pending"):
        wait_until(lambda: {"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}},
                   READINESS_PREDICATES["PersistentVolumeClaim"], 10, 2, deadline=deadline, clock=clock,
                   sleep=clock.sleep, subject=ObjRef("PVC", "shop", "data"))
    assert clock.sleeps[1:] == [2, 0.75]


def test_a_passed_shared_deadline_still_polls_once() -> None:
    clock = FakeClock()
    bound = {"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}
    assert wait_until(lambda: bound, READINESS_PREDICATES["PersistentVolumeClaim"], 5, deadline=clock() - 1,
                      clock=clock, sleep=clock.sleep) is bound
