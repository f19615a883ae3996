"""The fx source: daily exchange rates from a paginated JSON API, through dlt's `rest_api` source.

Incremental on the records' `updated_at`, sent back to the API as `updated_since` (dlt keeps the cursor in
state that commits with the load); merged on (currency_code, rate_date), so a revised rate replaces the old
one. The HTTP session retries 429/5xx/timeouts/dropped connections/truncated pages with jittered exponential
backoff and honours Retry-After (see `ingestion.sources.http`). Records failing `RATE_SPEC` go to
`raw_fx._dead_letters` with the page they came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dlt
from dlt.sources import DltResource
from dlt.sources.rest_api import rest_api_source

from ingestion.settings import ConfigError, non_negative_number
from ingestion.sources.http import RetryingSession
from ingestion.sources.quarantine import Field, RecordSpec, Tally, validating_map

TABLE = "exchange_rates"

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
) -> Iterator[DltResource]:
    if not isinstance(page_size, int) or page_size < 1:
        raise ConfigError(f"fx: page_size must be a whole number, 1 or more, not {page_size!r}")
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
                    "params": {
                        "page_size": page_size,
                        cursor_param: {
                            "type": "incremental",
                            "cursor_path": "updated_at",
                            # validation runs before the cursor step and parses `updated_at` to a datetime
                            "initial_value": _initial_value(initial_value),
                            "convert": lambda value: value.isoformat(),
                            # Each run asks again for what changed in the window before the last cursor: the
                            # API pages by number, and a rate revised while a run pages moves to the end,
                            # shifting a rate the run then never sees below the cursor (README "fx").
                            "lag": non_negative_number(lag_seconds, "fx: lag_seconds (seconds)"),
                            # a record without a cursor is not dropped here: validation quarantines it
                            "on_cursor_value_missing": "include",
                        },
                    },
                    "response_actions": [remember_page],
                },
            }
        ],
    }
    resource = rest_api_source(config, name="fx").resources[TABLE]
    resource.add_yield_map(
        validating_map(
            RATE_SPEC,
            source="fx",
            extracted_at=extracted_at or datetime.now(UTC),
            tally=tally if tally is not None else Tally(),
            origin=lambda: f"page {current_page['url']}",
        )
    )
    yield resource


def _initial_value(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(f"fx: initial_value must be an ISO timestamp, not {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
