"""Where Harbor keeps things. Each value can be overridden by an environment variable (the shop URL also by
`.dlt/secrets.toml`, as dlt reads it)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


# The password of a URL's user-info, `user:secret@host`, with or without a scheme before it (`postgres:s3cret@db`,
# a mistyped `postgresql+psycopg2//user:s3cret@db`). Not the `//` of a scheme: `mysql://u:s3cret@h` is `u:***@`.
# Up to the last `@` before a space: a password holding an unescaped `@` is masked whole.
_USERINFO_PASSWORD = re.compile(r"(?P<user>[^\s:/@]*):(?!//)\S+@")


def masked_passwords(text: str) -> str:
    """`text` with the password of any `user:password@host` in it replaced by `***`: for messages, logs and the
    warehouse's record of a failed run, whatever URL (or mistyped one) they quote."""
    return _USERINFO_PASSWORD.sub(r"\g<user>:***@", text)


def shown_location(location: str | Path) -> str:
    """A warehouse or database location for a message: a URL with its password masked, and not echoed at all
    when it does not parse (it may hold one); a file path as it is. Text without `://` that holds a
    `user:password@` (a URL with its scheme mistyped or left out) has the password masked too."""
    import sqlalchemy as sa

    text = str(location)
    if "://" not in text:
        return masked_passwords(text)
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "an unparseable URL"
    if not url.password:
        if masked_passwords(text) != text:  # SQLAlchemy took a `user:password@` for the database (`db:///u:p@h`)
            return masked_passwords(text)
        url = url._replace(password=None)  # `user:***@` would suggest a password where none is set (`user:@h`)
    # Masked again: a password holding an unescaped `@` is partly in what SQLAlchemy took for the host.
    return masked_passwords(url.render_as_string(hide_password=True))


class ConfigError(ValueError):
    """A setting is wrong or does not match what it points at; `harbor` exits 2 naming it."""


def non_negative_number(value: object, setting: str) -> float:
    """A setting's number, 0 or more (configuration hands over text: environment variables are strings);
    ConfigError naming `setting` otherwise."""
    try:
        number = float(str(value))
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise ConfigError(f"{setting} must be a number, 0 or more, not {value!r}")
    return number


def described_setting_error(error: BaseException) -> str:
    """One line for a setting dlt could not use. dlt names only the field (`chunk_size` cannot be coerced into
    `int`); the user typed an environment variable or a TOML key, so name the variables that set it and the
    value they hold."""
    field = getattr(error, "field_name", None)
    if field is None or not hasattr(error, "field_value"):
        return str(error).strip().splitlines()[0]
    hint = getattr(error, "hint", None)
    wanted = getattr(hint, "__name__", str(hint))
    suffix = f"__{field}".upper()
    setting = sorted((name, value) for name, value in os.environ.items() if name.upper().endswith(suffix))
    # `SOURCES__FX__CHUNK_SIZE` also ends in `__CHUNK_SIZE`: name the variables holding the refused value.
    named = [f"{name}={value!r}" for name, value in setting if value == str(error.field_value)] or [
        f"{name}={value!r}" for name, value in setting
    ]
    where = " or ".join(named) if named else f"{field} = {error.field_value!r} (in .dlt/config.toml or secrets.toml)"
    return f"{where} is not {_article(wanted)} {wanted}"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def checked_log_level() -> None:
    """dlt hands RUNTIME__LOG_LEVEL to Python's logging, which knows only upper-case names and failed every
    command with "Unknown level: 'info'": accept any case, and name the variable when the level is unknown."""
    import logging

    value = os.environ.get("RUNTIME__LOG_LEVEL")
    if value is None:
        return
    known = [name for name in logging.getLevelNamesMapping() if name not in ("NOTSET", "WARN", "FATAL")]
    if value.strip().upper() not in known:
        raise ConfigError(f"RUNTIME__LOG_LEVEL={value!r} is not a log level; one of {', '.join(known)}")
    os.environ["RUNTIME__LOG_LEVEL"] = value.strip().upper()


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    warehouse: Path  # the DuckDB file ingestion writes and dbt reads
    data_dir: Path  # the demo sources (shop database, event files) and dlt's local pipeline state
    shop_url: str  # SQLAlchemy URL of the shop database

    @classmethod
    def from_env(cls) -> Settings:
        project_dir = Path(os.environ.get("HARBOR_PROJECT_DIR") or PROJECT_DIR).resolve()  # set but empty: the default
        if not project_dir.is_dir():  # a typo: a warehouse and data folder were created under it, nothing loaded
            raise ConfigError(f"HARBOR_PROJECT_DIR {project_dir} is not a folder; it names the Harbor project")
        warehouse_setting = os.environ.get("HARBOR_WAREHOUSE")
        if warehouse_setting and "://" in warehouse_setting:
            raise ConfigError(
                f"HARBOR_WAREHOUSE is the DuckDB file's path, not a URL ({shown_location(warehouse_setting)}): "
                "for a PostgreSQL warehouse set HARBOR_DESTINATION=postgres and HARBOR_PG_* (README)"
            )
        warehouse = Path(warehouse_setting or project_dir / "warehouse" / "harbor.duckdb").resolve()
        if warehouse.is_dir():
            raise ConfigError(f"HARBOR_WAREHOUSE is a folder ({warehouse}); it names the DuckDB file")
        data_dir = Path(os.environ.get("HARBOR_DATA_DIR") or project_dir / "data").resolve()
        shop_url = configured_shop_url() or f"sqlite:///{data_dir / 'shop.sqlite'}"
        return cls(project_dir=project_dir, warehouse=warehouse, data_dir=data_dir, shop_url=shop_url)


def configured_shop_url() -> str | None:
    """`sources.shop.credentials` from dlt's providers (SOURCES__SHOP__CREDENTIALS, `.dlt/secrets.toml`,
    `.dlt/config.toml`), where the shop source would find it too; None when it is not configured."""
    import dlt

    value = dlt.secrets.get("sources.shop.credentials")
    return str(value) if value else None
