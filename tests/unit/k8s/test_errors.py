"""Error translation: one mapping from API/transport failures to k3smig errors, with safe messages."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from urllib3.connection import HTTPConnection

from k3smig_lib.errors import ConflictError, FatalError, SourceError, TargetError
from k3smig_lib.k8s.errors import ApiCall, ApiRetryableError, parse_retry_after, status_of, translate

SECRET_VALUE = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"  # what a Secret's data would look like in an echoed body


def api_error(
    status: int, reason: str, body: dict[str, object] | None = None, headers: dict[str, str] | None = None
) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.headers = headers or {}
    exc.body = json.dumps(body) if body is not None else None
    return exc


def test_forbidden_names_the_verb_the_resource_and_how_to_grant_it() -> None:
    call = ApiCall("list", "secrets", "", "vaultwarden", side="source", context="prod-admin")
    err = translate(api_error(403, "Forbidden"), call)
    assert isinstance(err, SourceError)
    assert "source cluster: list secrets in ns vaultwarden: not allowed (HTTP 403 Forbidden)" in str(err)
    assert 'a Role in ns vaultwarden rule {apiGroups: [""], resources: ["secrets"], verbs: ["list"]}' in err.fix
    assert "the user of context prod-admin" in err.fix
    assert "kubectl auth can-i list secrets -n vaultwarden" in err.fix


def test_forbidden_on_a_cluster_wide_group_resource_asks_for_a_cluster_role() -> None:
    err = translate(api_error(403, "Forbidden"), ApiCall("patch", "deployments", "apps", side="target"))
    assert isinstance(err, TargetError)
    assert 'a ClusterRole rule {apiGroups: ["apps"], resources: ["deployments"], verbs: ["patch"]}' in err.fix
    assert "kubectl auth can-i patch deployments.apps`" in err.fix


def test_unauthorized_names_the_context_whose_credentials_were_refused() -> None:
    err = translate(api_error(401, "Unauthorized"), ApiCall("get", "/version", side="target", context="k3s-vm"))
    assert isinstance(err, TargetError)
    assert "rejected the credentials of context k3s-vm (HTTP 401 Unauthorized)" in str(err)
    assert "refresh the token or client certificate of context k3s-vm" in err.fix


def test_not_found_names_the_object_and_its_namespace() -> None:
    err = translate(api_error(404, "Not Found"), ApiCall("get", "secrets", "", "shop", "db-creds", side="source"))
    assert (err.resource, err.namespace) == ("secrets/db-creds", "shop")
    assert str(err).startswith("secrets/db-creds in ns shop: not found on the source cluster (get; HTTP 404")


def test_throttling_is_retryable_and_carries_the_retry_after_seconds() -> None:
    err = translate(api_error(429, "Too Many Requests", headers={"Retry-After": "3"}), ApiCall("list", "pods"))
    assert isinstance(err, ApiRetryableError)
    assert (err.status, err.retry_after) == (429, 3.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable_without_a_retry_after(status: int) -> None:
    err = translate(api_error(status, "Server Error"), ApiCall("list", "pods", side="source"))
    assert isinstance(err, ApiRetryableError)
    assert (err.status, err.retry_after, err.side) == (status, None, "source")


def test_conflict_becomes_a_conflict_error_with_the_status_reason() -> None:
    body = {"kind": "Status", "reason": "AlreadyExists", "message": 'secrets "db" already exists', "code": 409}
    err = translate(api_error(409, "Conflict", body), ApiCall("create", "secrets", "", "shop", "db", side="target"))
    assert isinstance(err, ConflictError)
    assert "conflict (HTTP 409 Conflict: AlreadyExists)" in str(err)


def test_the_response_body_never_reaches_the_message_nor_the_chained_exception() -> None:
    body = {"kind": "Status", "reason": "Invalid", "code": 422,
            "message": f'Secret "db" is invalid: data[password]: Invalid value: "{SECRET_VALUE}"',
            "details": {"causes": [{"field": "data[password]", "message": f"bad value {SECRET_VALUE}"},
                                   {"field": "type", "message": "field is immutable"}]}}
    exc = api_error(422, "Unprocessable Entity", body)
    err = translate(exc, ApiCall("create", "secrets", "", "shop", "db", side="target"))
    assert SECRET_VALUE not in str(err) and SECRET_VALUE not in repr(err.args)
    assert "HTTP 422 Unprocessable Entity: Invalid; fields data[password], type" in str(err)
    assert exc.body is None and SECRET_VALUE not in str(exc)


def test_a_long_reason_is_cut_to_256_characters() -> None:
    err = translate(api_error(418, "x" * 1000), ApiCall("get", "pods", side="source"))
    assert isinstance(err, SourceError)
    assert len(err.message) <= 256 and err.message.endswith("…")


def test_connection_refused_is_retryable_and_says_so() -> None:
    conn = HTTPConnection("127.0.0.1", 1)
    cause = urllib3.exceptions.NewConnectionError(conn, "refused")
    refused = urllib3.exceptions.MaxRetryError(None, "/api", cause)  # type: ignore[arg-type]
    err = translate(refused, ApiCall("list", "secrets", side="source"))
    assert isinstance(err, ApiRetryableError) and err.status == 0
    assert err.message == "source cluster: list secrets: connection refused"


def test_a_reset_connection_is_retryable_and_says_so() -> None:
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
    err = translate(reset, ApiCall("list", "configmaps", side="target"))
    assert isinstance(err, ApiRetryableError)
    assert err.message == "target cluster: list configmaps: connection reset"


def test_a_read_timeout_is_retryable_and_says_so() -> None:
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out")  # type: ignore[arg-type]
    err = translate(timeout, ApiCall("get", "/version"))
    assert isinstance(err, ApiRetryableError) and err.message.endswith("timed out")


def test_an_unexpected_exception_is_fatal_and_asks_for_a_bug_report() -> None:
    err = translate(ValueError("Expecting value: line 1 column 1 (char 0)"), ApiCall("get", "/version", side="source"))
    assert isinstance(err, SourceError) and "report this as a k3smig bug" in err.fix


def test_an_already_translated_error_passes_through_unchanged() -> None:
    original = FatalError("already mapped")
    assert translate(original, ApiCall("get", "x")) is original


def test_status_of_follows_the_cause_chain() -> None:
    exc = api_error(410, "Gone")
    try:
        try:
            raise exc
        except ApiException as e:
            raise translate(e, ApiCall("list", "pods", side="source")) from e
    except SourceError as mapped:
        assert status_of(mapped) == 410
    assert status_of(ApiRetryableError("x", status=503)) == 503
    assert status_of(SourceError("no cause")) == 0


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412500.0) == 0.0
    assert parse_retry_after("") is None and parse_retry_after("later") is None


def test_field_causes_carry_their_reason_and_never_their_message() -> None:
    body = {"kind": "Status", "reason": "Invalid", "code": 422,
            "message": f'ConfigMap "app" is invalid: {SECRET_VALUE}',
            "details": {"causes": [
                {"field": "metadata.name", "reason": "FieldValueRequired", "message": "Required value"},
                {"field": ".spec.template.spec.containers[name=\"web\"].image", "reason": "FieldManagerConflict",
                 "message": f'conflict with "kubectl-edit": {SECRET_VALUE}'},
                {"field": "data", "reason": "not a reason!", "message": "x"},
                {"message": "a cause without a field is dropped"}]}}
    err = translate(api_error(422, "Unprocessable Entity", body), ApiCall("patch", "configmaps", "", "shop", "app"))
    assert err.message == (
        'patch configmaps/app in ns shop: refused (HTTP 422 Unprocessable Entity: Invalid; '
        'fields metadata.name (FieldValueRequired), .spec.template.spec.containers[name="web"].image '
        "(FieldManagerConflict), data)")
    assert SECRET_VALUE not in str(err) and "Required value" not in str(err) and "kubectl-edit" not in str(err)


def test_a_field_path_that_could_carry_a_value_is_dropped() -> None:
    body = {"reason": "Invalid", "details": {"causes": [{"field": "data[password]: hunter2 is weak", "reason": "X"}]}}
    err = translate(api_error(422, "Unprocessable Entity", body), ApiCall("patch", "secrets", side="target"))
    assert "hunter2" not in str(err) and "HTTP 422 Unprocessable Entity: Invalid)" in str(err)
