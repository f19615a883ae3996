"""An HTTP session that retries like a polite production client.

Retried: 429 and 5xx answers, timeouts, dropped connections and truncated bodies (a 2xx JSON answer that
does not parse). Waits grow exponentially with jitter (so many clients do not retry in lock-step), a
`Retry-After` header wins when the server sends one, and attempts are bounded. The knobs are dlt's own
`[runtime]` settings (`request_max_attempts`, `request_backoff_factor`, `request_max_retry_delay`,
`request_timeout`), so `.dlt/config.toml` or `RUNTIME__REQUEST_MAX_ATTEMPTS=...` tune every HTTP source.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import dlt
import requests
from requests.hooks import default_hooks, dispatch_hook

from ingestion.settings import masked_passwords, non_negative_number
from ingestion.sources.quarantine import NotJson

log = logging.getLogger("harbor.ingestion.http")

RETRY_STATUS = frozenset({429, *range(500, 600)})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_factor: float = 1.0
    max_delay: float = 300.0
    timeout: float = 60.0

    @classmethod
    def from_dlt_config(cls) -> RetryPolicy:
        def get(key: str, default: float) -> float:
            value = dlt.config.get(f"runtime.{key}")
            return default if value is None else non_negative_number(value, f"runtime.{key} (RUNTIME__{key.upper()})")

        return cls(
            max_attempts=max(1, int(get("request_max_attempts", cls.max_attempts))),
            backoff_factor=get("request_backoff_factor", cls.backoff_factor),
            max_delay=get("request_max_retry_delay", cls.max_delay),
            timeout=get("request_timeout", cls.timeout),
        )

    @property
    def connect_timeout(self) -> int:
        """`timeout` for libpq (PostgreSQL), which takes whole seconds, at least 2, and waits for ever at 0."""
        return max(2, math.ceil(self.timeout))

    @classmethod
    def libpq_connect_timeout(cls) -> int:
        """The configured `runtime.request_timeout` as libpq's connect_timeout: a PostgreSQL server that accepts the
        connection and never answers held Harbor for ever, deaf to Ctrl-C."""
        return cls.from_dlt_config().connect_timeout

    def delay(self, attempt: int, response: requests.Response | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        retry_after = _retry_after_seconds(response) if response is not None else None
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.backoff_factor * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)  # "equal jitter": never zero, never in lock-step


# Words of a database's refusal that name a wrong setting, which waiting does not change.
WRONG_SETTING_SIGNS = (
    "does not exist",  # database or role
    "authentication failed",
    "no password supplied",
    "pg_hba.conf",
    "unable to open database file",  # SQLite: no such folder
)


def connect_with_retries(
    connect: Callable[[], object],
    *,
    errors: type[Exception] | tuple[type[Exception], ...],
    what: str,
    refused: Callable[[str], Exception],
    logger: logging.Logger = log,
    policy: RetryPolicy | None = None,
) -> None:
    """Call `connect`, retrying with jittered exponential backoff (dlt's [runtime] request_* settings) while it
    raises one of `errors`: the last one propagates when the attempts run out. An error a line of which names a
    wrong setting (`WRONG_SETTING_SIGNS`: libpq tries each address of a host name in turn and says so a line each,
    so the refusal may be any line) raises `refused(that line)` at once, without retrying."""
    policy = policy or RetryPolicy.from_dlt_config()
    rng = random.Random()
    for attempt in range(1, policy.max_attempts + 1):
        try:
            connect()
            return
        except errors as error:
            text = str(getattr(error, "orig", None) or error)
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            refusal = next((line for line in lines if any(sign in line for sign in WRONG_SETTING_SIGNS)), None)
            if refusal is not None:
                raise refused(refusal) from None
            if attempt == policy.max_attempts:
                raise
            wait = policy.delay(attempt, None, rng)
            reason = lines[0] if lines else type(error).__name__
            logger.warning(
                "%s unreachable, retrying in %.2fs (attempt %d of %d): %s",
                what,
                wait,
                attempt + 1,
                policy.max_attempts,
                reason,
            )
            time.sleep(wait)


class RetryingSession(requests.Session):
    def __init__(self, policy: RetryPolicy | None = None, *, rng: random.Random | None = None) -> None:
        super().__init__()
        self.policy = policy or RetryPolicy.from_dlt_config()
        self.rng = rng or random.Random()
        self.attempts = 0  # requests sent, retries included, for logs and tests

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.policy.timeout
        # Response hooks (dlt's rest_api raises on error statuses in one) run once, on the final answer.
        hooks, request.hooks = request.hooks, default_hooks()
        try:
            response = self._send_with_retries(request, **kwargs)
        finally:
            request.hooks = hooks
        return dispatch_hook("response", hooks, response, **kwargs)

    def _send_with_retries(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        for attempt in range(1, self.policy.max_attempts + 1):
            self.attempts += 1
            response: requests.Response | None = None
            try:
                response = super().send(request, **kwargs)
                problem = _retryable_problem(response)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
                if attempt == self.policy.max_attempts:
                    raise
                problem = f"{type(error).__name__}: {error}"
            if problem is None:
                return response
            if attempt == self.policy.max_attempts:
                if response is not None and response.status_code in RETRY_STATUS:
                    return response  # the caller's raise_for_status names the final status
                raise requests.exceptions.ChunkedEncodingError(f"{problem} (after {attempt} attempts)")
            wait = self.policy.delay(attempt, response, self.rng)
            log.warning(
                "retrying %s in %.2fs (attempt %d of %d): %s",
                masked_passwords(request.url or ""),  # a base URL may carry `user:password@`
                wait,
                attempt + 1,
                self.policy.max_attempts,
                masked_passwords(problem),
            )
            time.sleep(wait)
        raise AssertionError("unreachable")


def _retryable_problem(response: requests.Response) -> str | None:
    if response.status_code in RETRY_STATUS:
        return f"HTTP {response.status_code}"
    if response.ok:
        try:
            document = json.loads(response.content, parse_constant=NotJson)
        except (ValueError, RecursionError):
            # Only a body that says it is JSON is retried as cut short; what else it is, the caller decides.
            return "truncated or malformed JSON body" if "json" in response.headers.get("Content-Type", "") else None
        # The caller (dlt's REST client) gets this parse rather than requests' own: requests parses with
        # simplejson, which refuses NaN and Infinity, so one such value failed the whole page, naming no record.
        # Here they are NotJson markers, which validation sends to the dead letters with the field's name.
        response.json = lambda **kwargs: document
    return None


def _retry_after_seconds(response: requests.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:  # RFC 9110 says whole seconds, but servers send "1.5" too
        seconds = float(header)
    except ValueError:
        pass  # not a number: an HTTP date, or neither
    else:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):  # a header that is neither: fall back to the backoff, not fail the source
        return None
    if when.tzinfo is None:  # an HTTP date without a zone is UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())
