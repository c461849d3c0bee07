"""A typed client of an engine's ingress and admin API, for tests: call, send, attach, state.

JSON in, JSON out, as restate-sdk handlers take and return by default. A handler's failure (any
non-2xx answer) raises ``InvocationFailed`` with the status and message the ingress answered
(docs/http-api.md), so a test asserts on a ``TerminalError`` as on a value.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx

_NO_BODY = object()


class InvocationFailed(Exception):
    """The invocation ended with a failure (a TerminalError, an unknown handler, a refusal)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def _path(service: str, handler: str, key: str | None) -> str:
    return f"/{quote(service, safe='')}/" + (f"{quote(key, safe='')}/" if key is not None else "") + \
        quote(handler, safe="")


def _answer(resp: httpx.Response) -> Any:
    if resp.status_code >= 300:
        try:
            message = resp.json().get("message", resp.text)
        except ValueError:
            message = resp.text
        raise InvocationFailed(resp.status_code, message)
    return resp.json() if resp.content else None


class Client:
    """Calls through the engine's ingress (``ingress``) and reads through its admin API (``admin``)."""

    def __init__(self, ingress: str, admin: str, timeout_s: float = 60.0) -> None:
        self.ingress, self.admin = ingress.rstrip("/"), admin.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def _post(self, path: str, arg: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        headers = dict(headers or {})
        content = None
        if arg is not _NO_BODY:
            content = json.dumps(arg).encode()
            headers["content-type"] = "application/json"
        return self._http.post(self.ingress + path, content=content, headers=headers)

    def call(self, service: str, handler: str, arg: Any = _NO_BODY, *, key: str | None = None,
             idempotency_key: str | None = None) -> Any:
        """Invoke and wait for the result (decoded from JSON); raises InvocationFailed on a failure."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return _answer(self._post(_path(service, handler, key), arg, headers))

    def send(self, service: str, handler: str, arg: Any = _NO_BODY, *, key: str | None = None,
             idempotency_key: str | None = None, delay: timedelta | None = None) -> str:
        """Invoke without waiting (after ``delay``, a durable timer); returns the invocation id."""
        path = _path(service, handler, key) + "/send"
        if delay is not None:
            path += f"?delay={int(delay.total_seconds() * 1000)}"
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return str(_answer(self._post(path, arg, headers))["invocationId"])

    def attach(self, invocation_id: str) -> Any:
        """Wait for an invocation's result (one sent, or one a crash cut its caller off from)."""
        return _answer(self._http.get(f"{self.ingress}/restate/invocation/{quote(invocation_id, safe='')}/attach"))

    def workflow_attach(self, workflow: str, workflow_id: str) -> Any:
        """Wait for a workflow run's result."""
        return _answer(self._http.get(f"{self.ingress}/restate/workflow/{quote(workflow, safe='')}/"
                                      f"{quote(workflow_id, safe='')}/attach"))

    def state(self, service: str, key: str) -> dict[str, Any]:
        """A virtual object's or workflow's state: each value decoded from JSON (else its text)."""
        resp = self._http.get(f"{self.admin}/services/{quote(service, safe='')}/state/{quote(key, safe='')}")
        raw = (_answer(resp) or {}).get("state", {})
        out: dict[str, Any] = {}
        for name, text in raw.items():
            try:
                out[name] = json.loads(text)
            except ValueError:
                out[name] = text
        return out

    def invocation(self, invocation_id: str) -> dict[str, Any]:
        """The admin API's description of an invocation: status, attempts, journal (docs/http-api.md)."""
        return _answer(self._http.get(f"{self.admin}/invocations/{quote(invocation_id, safe='')}"))

    def close(self) -> None:
        self._http.close()
