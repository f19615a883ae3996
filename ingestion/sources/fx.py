"""The fx source: daily exchange rates from a paginated JSON API, through dlt's `rest_api` source.

Incremental on the records' `updated_at`, sent back to the API as `updated_since`: the newest valid `updated_at`
loaded, less the lag, kept in the resource's dlt state, which commits with the load. Harbor keeps that cursor
itself rather than through `dlt.sources.incremental`, whose lagged cursor step failed (an AssertionError, every
run) when a run's first record was a dead letter, and which let a changed `initial_value` move a stored cursor.
Merged on (currency_code, rate_date), so a revised rate replaces the old one. The HTTP session retries 429/5xx/timeouts/dropped connections/truncated pages with jittered exponential
backoff and honours Retry-After (see `ingestion.sources.http`). Records failing `RATE_SPEC`, or holding NaN,
Infinity or a NUL character in any field, go to `raw_fx._dead_letters` with the page they came from. A URL that
is none (`not-a-url`) or that the API answers 404 for is a wrong `base_url` or `endpoint_path`: ConfigError
(exit 2), not a failed load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit, urlunsplit

import dlt
import requests
from dlt.common.exceptions import DltException
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.utils import join_url
from dlt.sources.rest_api import rest_api_source

from ingestion.settings import ConfigError, masked_passwords, non_negative_number
from ingestion.sources.http import RetryingSession
from ingestion.sources.quarantine import Field, RecordSpec, Tally, future_tolerance, validating_map

TABLE = "exchange_rates"
CURSOR_STATE = "updated_at_cursor"  # in the resource's dlt state: the newest valid `updated_at` loaded, ISO

RATE_SPEC = RecordSpec(
    TABLE,
    {
        "currency_code": Field("text"),
        "rate_date": Field("date"),
        "usd_per_unit": Field("decimal"),
        "updated_at": Field("timestamp"),
    },
    cursor="updated_at",
)


@dlt.source(name="fx", max_table_nesting=0)
def fx_source(
    base_url: str = dlt.config.value,
    endpoint_path: str = "rates",
    page_size: int = 100,
    cursor_param: str = "updated_since",
    initial_value: str = "1970-01-01T00:00:00+00:00",  # ISO timestamp: where the first run starts
    lag_seconds: float = 2 * 86400,
    extracted_at: datetime | None = None,
    tally: Tally | None = None,
    full_refresh: bool = False,
) -> Iterator[DltResource]:
    if not isinstance(page_size, int) or page_size < 1:
        raise ConfigError(f"fx: page_size must be a whole number, 1 or more, not {page_size!r}")
    if not isinstance(cursor_param, str) or not cursor_param.strip():
        raise ConfigError(
            f"fx: cursor_param (SOURCES__FX__CURSOR_PARAM) must name the API's parameter, not {cursor_param!r}"
        )
    _check_endpoint_url(base_url, endpoint_path)
    lag = non_negative_number(lag_seconds, "fx: lag_seconds (seconds)")
    first = _initial_value(initial_value)
    # A full refresh drops the state only after the source is built: read here, the cursor made it reload only the
    # lag window's rates into an emptied raw table.
    stored = None if full_refresh else _stored_cursor()
    # Each run asks again for what changed in the window before the cursor: the API pages by number, and a rate
    # revised while a run pages moves to the end, shifting a rate the run then never sees below the cursor
    # (README "fx"). The first run starts at `initial_value`; later ones at the cursor whatever it says.
    since = first if stored is None else stored - timedelta(seconds=lag)
    newest = {"value": stored}

    def remember_cursor(record: dict) -> None:
        value = record.get("updated_at")
        if isinstance(value, datetime) and (newest["value"] is None or value > newest["value"]):
            newest["value"] = value
            dlt.current.resource_state(TABLE)[CURSOR_STATE] = value.isoformat()

    current_page = {"url": "?"}

    def remember_page(response, *args, **kwargs):
        current_page["url"] = response.url
        return response

    config = {
        "client": {
            "base_url": base_url,
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": "total_pages"},
            "session": RetryingSession(),
        },
        "resources": [
            {
                "name": TABLE,
                "primary_key": ["currency_code", "rate_date"],
                "write_disposition": "merge",
                "endpoint": {
                    "path": endpoint_path,
                    "data_selector": "data",
                    "params": {"page_size": page_size, cursor_param: since.isoformat()},
                    "response_actions": [remember_page, _refuse_missing_endpoint, _refuse_a_page_of_another_shape],
                },
            }
        ],
    }
    resource = rest_api_source(config, name="fx").resources[TABLE]
    resource.add_yield_map(
        validating_map(
            dataclasses.replace(RATE_SPEC, future_tolerance=future_tolerance(timedelta(seconds=lag))),
            source="fx",
            extracted_at=extracted_at or datetime.now(UTC),
            tally=tally if tally is not None else Tally(),
            origin=lambda: f"page {current_page['url']}",
            on_valid=remember_cursor,
        )
    )
    yield resource


def _stored_cursor() -> datetime | None:
    """The cursor the last load committed: Harbor's own, or, in a warehouse loaded before Harbor kept it, the one
    dlt's incremental kept; None on a first run (or outside a pipeline)."""
    try:
        resource = dlt.current.source_state().get("resources", {}).get(TABLE, {})
    except DltException:
        return None
    value = resource.get(CURSOR_STATE) or resource.get("incremental", {}).get("updated_at", {}).get("last_value")
    if value is None:
        return None
    value = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _initial_value(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(f"fx: initial_value must be an ISO timestamp, not {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


URL_SETTINGS = "sources.fx.base_url (SOURCES__FX__BASE_URL) and sources.fx.endpoint_path (SOURCES__FX__ENDPOINT_PATH)"


def _check_endpoint_url(base_url: str, endpoint_path: str) -> None:
    """ConfigError unless the endpoint, as dlt's REST client joins it, is an http(s) URL with a host: `not-a-url`
    failed the first request with requests' InvalidURL, a failed load (exit 4) instead of a wrong setting."""
    url = endpoint_path if urlsplit(endpoint_path).scheme in ("http", "https") else join_url(base_url, endpoint_path)
    problem = None
    if urlsplit(url).scheme not in ("http", "https"):
        problem = "not an http(s) URL"
    else:
        try:
            requests.PreparedRequest().prepare_url(url, None)
        except requests.exceptions.RequestException as error:  # InvalidURL, MissingSchema: no host, a bad port
            problem = f"not a valid URL ({error})"
    if problem:
        raise ConfigError(
            masked_passwords(
                f"fx: the API endpoint {url!r} ({base_url=}, {endpoint_path=}) is {problem}; check {URL_SETTINGS}"
            )
        )


class UnexpectedPage(RuntimeError):
    """The API answered a page that is not one of rates: a failed load (exit 4) naming the URL and what came."""


def _refuse_a_page_of_another_shape(response: requests.Response, *args, **kwargs) -> requests.Response:
    """An HTML error page sent with 200 failed as "Expecting value: line 1 column 1 (char 0)", and a body without
    the `data` list (the API renamed it, or sends a bare list) loaded no rate and exited 0, as a quiet day would."""
    if not response.ok:
        return response  # retried, or refused by `_refuse_missing_endpoint`, or a failed load naming its status
    parts = urlsplit(response.url)
    url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
    try:
        page = response.json()
    except ValueError:
        said = response.headers.get("Content-Type") or "no Content-Type"
        raise UnexpectedPage(f"fx: {url} answered {said}, not JSON: {response.text[:80]!r}") from None
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        shape = (
            f"an object with {', '.join(sorted(map(str, page))) or 'no keys'}"
            if isinstance(page, dict)
            else (f"a JSON {type(page).__name__}")
        )
        raise UnexpectedPage(
            f"fx: {url} answered {shape}, not a page with a `data` list of rates: has the API changed?"
        )
    return response


def _refuse_missing_endpoint(response: requests.Response, *args, **kwargs) -> requests.Response:
    """A 404 for the first page of the configured endpoint is a wrong base URL or endpoint path, not an outage
    (5xx and timeouts are retried, `ingestion.sources.http`) nor a failed load: ConfigError naming the settings and
    the URL."""
    parts = urlsplit(response.url)
    # Only on the first page: a 404 later (a page gone while paging) says nothing of the settings that found page 1.
    first_page = parse_qs(parts.query).get("page", ["1"])[0] == "1"
    if response.status_code == 404 and first_page:
        # without the query (the paging parameters) or a user and password
        url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        raise ConfigError(f"fx: the API answered 404 Not Found for {url}; check {URL_SETTINGS}")
    return response
