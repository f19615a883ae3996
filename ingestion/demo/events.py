"""The demo clickstream: one JSON-lines file of web events lands in `<data_dir>/events/` per shop tick.

Real trackers are messy, and so is this one, deterministically (everything derives from seed and tick):
- late events: some events happened hours before the file that carries them lands;
- duplicates: a few events of the previous file are sent again, same `event_id`, in the next one;
- dirty lines (when `dirty` is on): one line that is not JSON and one event with a required field missing
  or of the wrong type, so the dead-letter queue has something to catch.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingestion.demo.shop import SHOP_START

EVENT_TYPES = ("page_view", "add_to_cart", "checkout", "purchase")
PAGES = ("/", "/search", "/category/apparel", "/category/footwear", "/category/home", "/cart", "/checkout")


@dataclass(frozen=True)
class EventFile:
    path: Path
    events: int  # valid events written, duplicates included
    duplicates: int
    late: int
    bad_lines: int


def events_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "events"


def event_file_name(tick: int) -> str:
    return f"events_{tick:05d}.jsonl"


def write_events(
    data_dir: Path,
    *,
    seed: int,
    tick: int,
    scale: float = 1.0,
    dirty: bool = True,
) -> EventFile:
    """Write the file that lands at the end of tick `tick`; rewriting it gives the same bytes."""
    shop_time = _tick_time(tick)
    folder = events_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    events = _events_for_tick(seed, tick, shop_time, scale)
    duplicates = _previous_events(seed, tick, scale)
    late = sum(1 for e in events if e["event_time"] < (shop_time - timedelta(days=1)).isoformat())
    lines = [json.dumps(e, sort_keys=True) for e in events + duplicates]
    bad = 0
    if dirty:
        rng = random.Random(f"{seed}:events:dirty:{tick}")
        broken = dict(events[0], event_id=f"bad-{seed}-{tick}")
        if rng.random() < 0.5:
            broken.pop("event_time")
        else:
            broken["customer_id"] = "not-a-number"
        lines.insert(rng.randrange(len(lines) + 1), json.dumps(broken, sort_keys=True))
        lines.insert(rng.randrange(len(lines) + 1), '{"event_id": "truncated-' + str(tick) + '", "event_ty')
        bad = 2
    path = folder / event_file_name(tick)
    # Write then rename: a reader never sees half a file.
    partial = path.with_suffix(".jsonl.partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return EventFile(path, len(events) + len(duplicates), len(duplicates), late, bad)


def _events_for_tick(seed: int, tick: int, shop_time: datetime, scale: float) -> list[dict]:
    rng = random.Random(f"{seed}:events:{tick}")
    n_customers = max(10, round(100 * scale))
    count = max(10, round(40 * scale))
    day_start = shop_time - timedelta(days=1)
    events = []
    for index in range(count):
        # About one event in ten is late: it happened up to 6 hours before the day the file covers.
        if rng.random() < 0.1:
            happened = day_start - timedelta(seconds=rng.randrange(1, 6 * 3600))
        else:
            happened = day_start + timedelta(seconds=rng.randrange(86_400))
        anonymous = rng.random() < 0.3
        events.append(
            {
                "event_id": f"ev-{seed}-{tick:05d}-{index:05d}",
                "event_time": happened.astimezone(UTC).isoformat(),
                "event_type": rng.choices(EVENT_TYPES, weights=(70, 15, 10, 5))[0],
                "customer_id": None if anonymous else rng.randint(1, n_customers),
                "anonymous_id": f"anon-{rng.randrange(10**8):08d}",
                "page_url": rng.choice(PAGES),
            }
        )
    return events


def _previous_events(seed: int, tick: int, scale: float) -> list[dict]:
    """The few events of the previous tick that the tracker sends again."""
    if tick == 0:
        return []
    rng = random.Random(f"{seed}:events:dup:{tick}")
    previous = _events_for_tick(seed, tick - 1, _tick_time(tick - 1), scale)
    return rng.sample(previous, k=min(3, len(previous)))


def _tick_time(tick: int) -> datetime:
    """The shop clock at the end of a tick: tick 0 is the end of the created history."""
    return SHOP_START + timedelta(days=tick)
