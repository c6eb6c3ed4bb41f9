"""Sending one request: what may be retried, with what backoff, and how failures read.

Three kinds of request, by what a retry could do:

- `READ` (GET, and a dry-run restore): retried on a connection error, a dropped connection, a timeout
  and a 503. Repeating it changes nothing.
- `CONDITIONAL` (a write carrying `If-Match`): retried likewise, because the resent request can land
  only if the first did not (the first one moves the asset's version on, so the second gets 412). A
  412 after an attempt whose outcome was unknown is therefore ambiguous: `Sent.ambiguous` says so, and
  the caller raises OutcomeUnknownError instead of deciding again.
- `WRITE` (anything else that writes): retried only when nothing can have been applied: the connection
  was never made (nothing was sent) or the server answered 503 `"outcome": "not_applied"`. A dropped
  connection after sending, a read timeout or a 503 `"outcome": "unknown"` raise OutcomeUnknownError
  at once; the write is never repeated blindly.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from eventstore.errors import OutcomeUnknownError, StateStoreError, StoreUnavailableError


class AuthError(StateStoreError):
    """The server refused the token: missing, unknown or revoked (401), or its scope is too low (403)."""


class Safety(Enum):
    """What a retry of a request could do (see the module's docstring)."""

    READ = "read"
    CONDITIONAL = "conditional"
    WRITE = "write"


# Errors raised before a byte of the request left this process: retrying them is always safe.
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass
class ClientStats:
    """Counters of one client, for benchmarks and for people wondering why a call was slow."""

    requests: int = 0
    """HTTP requests sent (every attempt counts)."""
    retries: int = 0
    """Attempts repeated after a connection error, a timeout or a 503."""
    conflicts: int = 0
    """Conditional writes refused with 412 and decided again (`update` under contention)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A response (never a 401, 403 or 503) and whether an earlier attempt's outcome was unknown."""

    response: httpx.Response
    ambiguous: bool


class Transport:
    """An `httpx.Client` with eventstore's retry rules. Thread-safe (httpx's pool is)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float | httpx.Timeout,
        retries: int,
        backoff: float,
        max_backoff: float = 2.0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats = ClientStats()
        self._lock = threading.Lock()
        # Idle connections are dropped after 2 s, before the server closes them (uvicorn: 5 s), so a
        # write is not sent on a connection the server is closing at that moment.
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=2.0),
        )

    def close(self) -> None:
        self.http.close()

    def count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def pause(self, attempt: int) -> None:
        """Exponential backoff with full jitter: a random wait up to backoff·2^attempt (capped)."""
        time.sleep(random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt)))

    def send(
        self,
        method: str,
        path: str,
        safety: Safety,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Sent:
        """Send with the retry rules of `safety`. Raises StoreUnavailableError (nothing applied),
        OutcomeUnknownError (a write may have been applied) or AuthError; returns any other answer."""
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        ambiguous = False
        attempt = 0
        while True:
            self.count("requests")
            try:
                response = self.http.request(method, path, params=params, content=content, headers=headers)
            except _NOTHING_SENT as error:
                failure: StoreUnavailableError = self._unreachable(error)
            except httpx.TransportError as error:
                # The request (or part of it) was sent and no answer came back.
                if safety is Safety.WRITE:
                    why = f"the connection failed after sending ({error!r})"
                    raise self._unknown(method, path, why) from None
                ambiguous = ambiguous or safety is Safety.CONDITIONAL
                failure = StoreUnavailableError(
                    f"No answer from the eventstore server at {self.base_url} ({error!r})"
                )
            else:
                status = response.status_code
                if status == 503:
                    detail, outcome = _unavailable(response)
                    if outcome == "unknown":
                        if safety is Safety.WRITE:
                            raise self._unknown(method, path, f"the server said: {detail}")
                        ambiguous = ambiguous or safety is Safety.CONDITIONAL
                    failure = StoreUnavailableError(
                        f"The eventstore server at {self.base_url} cannot use its database: {detail}; "
                        "nothing was applied, and it is safe to retry"
                    )
                elif status in (401, 403):
                    raise AuthError(_auth_message(status, detail_of(response)))
                else:
                    return Sent(response, ambiguous)
            if attempt >= self.retries:
                if ambiguous:
                    raise self._unknown(method, path, str(failure))
                raise failure
            self.count("retries")
            self.pause(attempt)
            attempt += 1

    def _unreachable(self, error: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"Cannot reach the eventstore server at {self.base_url} ({type(error).__name__}: {error}); "
            "nothing was sent, and it is safe to retry"
        )

    def _unknown(self, method: str, path: str, why: str) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            f"{method} {path}: the outcome is unknown ({why}): the write may or may not have been applied. "
            "Look at history() before repeating it."
        )


def detail_of(response: httpx.Response) -> str:
    """The `detail` of an error answer, as one line of text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "message" in detail:  # Airflow's {"reason", "message"}
        return str(detail["message"])
    if isinstance(detail, str):
        return detail
    return json.dumps(detail)


def _unavailable(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or "503 Service Unavailable", "not_applied"
    if not isinstance(body, dict):
        return str(body), "not_applied"
    outcome = "unknown" if body.get("outcome") == "unknown" else "not_applied"
    return str(body.get("detail", "503 Service Unavailable")), outcome


def _auth_message(status: int, detail: str) -> str:
    if status == 401:
        return f"The eventstore server refused the request (401): {detail}. Pass token= to connect()."
    return f"The eventstore server refused the request (403): {detail}"
