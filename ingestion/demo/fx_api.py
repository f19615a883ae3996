"""The demo exchange-rate API: a small paginated JSON API on localhost, standard library only.

GET /v1/rates?updated_since=<ISO timestamp>&page=<n>&page_size=<k> answers
{"data": [{"currency_code", "rate_date", "usd_per_unit", "updated_at"}, ...], "page": n, "total_pages": m}
ordered by (updated_at, currency_code, rate_date), only rates updated at or after `updated_since`.

Rates exist for every day from the start of the shop's history up to the shop clock (`tick`). Like a real
provider it revises a few past rates later (a newer `updated_at`), and when `dirty` it sends one malformed
record per tick. Everything derives from (seed, tick). For tests, `faults` is a queue of failures served one
per request, before the normal answer: "429" (with Retry-After), "500", "503", "404", "timeout", "drop"
(connection closed without an answer), "truncate" (half a body, then the connection closes) and "" (none).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from ingestion.demo.shop import HISTORY_DAYS, SHOP_START

CURRENCIES = ("EUR", "GBP", "USD")
BASE_RATES = {"EUR": Decimal("1.0900"), "GBP": Decimal("1.2700"), "USD": Decimal("1.0000")}
PATH = "/v1/rates"


def rates_as_of(seed: int, tick: int, *, dirty: bool = True) -> list[dict]:
    """Every rate record the provider serves at the end of `tick`, latest revision only, sorted as served."""
    first_day = (SHOP_START - timedelta(days=HISTORY_DAYS)).date()
    last_day = (SHOP_START + timedelta(days=tick)).date()  # exclusive: today's rate is published tomorrow
    records: dict[tuple[str, date], dict] = {}
    for currency in CURRENCIES:
        rng = random.Random(f"{seed}:fx:{currency}")
        rate = BASE_RATES[currency]
        day = first_day
        while day < last_day:
            if currency != "USD":
                rate = (rate * (1 + Decimal(rng.randint(-50, 50)) / 10_000)).quantize(Decimal("0.000001"))
            published = datetime.combine(day + timedelta(days=1), dtime(6), tzinfo=UTC)
            records[(currency, day)] = _record(currency, day, rate, published)
            day += timedelta(days=1)
    extra = []
    for revision_tick in range(1, tick + 1):
        rng = random.Random(f"{seed}:fx:revise:{revision_tick}")
        revised_at = SHOP_START + timedelta(days=revision_tick) - timedelta(hours=rng.randint(1, 12))
        candidates = sorted(k for k in records if k[0] != "USD" and _as_dt(records[k]["updated_at"]) < revised_at)
        for key in rng.sample(candidates, k=min(2, len(candidates))):
            old = Decimal(records[key]["usd_per_unit"])
            records[key] = _record(key[0], key[1], old + Decimal("0.0001"), revised_at)
        if dirty:
            extra.append(
                {
                    "currency_code": "EUR",
                    "rate_date": "not-a-date",
                    "usd_per_unit": "N/A",
                    "updated_at": (revised_at + timedelta(minutes=1)).isoformat(),
                }
            )
    rows = list(records.values()) + extra
    rows.sort(key=lambda r: (r["updated_at"], r["currency_code"], r["rate_date"]))
    return rows


def _record(currency: str, day: date, rate: Decimal, updated_at: datetime) -> dict:
    return {
        "currency_code": currency,
        "rate_date": day.isoformat(),
        "usd_per_unit": str(rate),
        "updated_at": updated_at.isoformat(),
    }


def _as_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


class FxApi:
    """The API server in a background thread: `with FxApi(tick=3) as api: api.base_url ...`."""

    def __init__(
        self, *, seed: int = 42, tick: int = 0, dirty: bool = True, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.seed = seed
        self.tick = tick
        self.dirty = dirty
        self.faults: deque[str] = deque()
        self.log: list[tuple[str, int | str]] = []  # (path with query, status or fault) per request
        self.hang_seconds = 3.0
        self.content_type = "application/json"  # what the answers say they are (servers send text/plain too)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1/"

    def start(self) -> FxApi:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fx-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FxApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def page(self, updated_since: str | None, page: int, page_size: int) -> dict:
        rows = rates_as_of(self.seed, self.tick, dirty=self.dirty)
        if updated_since:
            since = _as_dt(updated_since.replace("Z", "+00:00"))
            rows = [r for r in rows if _as_dt(r["updated_at"]) >= since]
        total_pages = max(1, -(-len(rows) // page_size))
        start = (page - 1) * page_size
        return {"data": rows[start : start + page_size], "page": page, "total_pages": total_pages}


def _handler_for(api: FxApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test and CLI output clean
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path.rstrip("/") != PATH:
                self._send(404, {"error": f"unknown path {url.path}"})
                return
            fault = api.faults.popleft() if api.faults else None
            api.log.append((self.path, fault or 200))
            if fault == "429":
                self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
            elif fault in ("500", "502", "503"):
                self._send(int(fault), {"error": "server error"})
            elif fault == "404":
                self._send(404, {"error": "no such page"})
            elif fault == "timeout":
                time.sleep(api.hang_seconds)
                self.close_connection = True
            elif fault == "drop":
                self.close_connection = True
            else:
                query = parse_qs(url.query)
                try:
                    page = int(query.get("page", ["1"])[0])
                    page_size = int(query.get("page_size", ["100"])[0])
                    body = api.page(query.get("updated_since", [None])[0], page, page_size)
                except ValueError as error:
                    self._send(400, {"error": str(error)})
                    return
                self._send(200, body, truncate=fault == "truncate")

        def _send(
            self, status: int, body: dict | bytes, headers: dict[str, str] | None = None, *, truncate: bool = False
        ) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()  # bytes: sent as they are
            self.send_response(status)
            self.send_header("Content-Type", api.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if truncate:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

    return Handler
