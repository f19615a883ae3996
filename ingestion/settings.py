"""Where Harbor keeps things. Each value can be overridden by an environment variable (the shop URL also by
`.dlt/secrets.toml`, as dlt reads it)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


# A URL's scheme, also mistyped (`postgresql+psycopg2//`, `postgresql+psycopg2:/`), before its user-info.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(?::/{1,2}|//)")
# Web URLs end their user-info at the path (`http://h:8765/rates?contact=ops@example.com` has none); database URLs,
# as SQLAlchemy reads them, at the last `@` (a password may hold `/`, `?`, `#` and `@` unescaped).
_WEB_SCHEMES = ("http", "https", "ftp", "ftps", "ws", "wss")
# A password given as a keyword: libpq's `password=s3cret` (`PGPASSWORD=` too), a JSON or TOML `"password": "s3cret"`.
_KEYWORD_PASSWORD = re.compile(r"""(?i)(?P<key>password["']?\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;&}"']+)""")


def _masked_token(token: str) -> str:
    """One whitespace-free piece of text with the password of a URL's user-info in it (`user:secret@host`, after a
    scheme, a mistyped one or none: `postgres:s3cret@db`) replaced by `***`. String operations only: linear."""
    if "@" not in token or ":" not in token:
        return token
    scheme = _SCHEME.search(token)
    start = scheme.end() if scheme else 0
    end = len(token)
    if scheme and scheme.group().split(":")[0].rstrip("/").lower() in _WEB_SCHEMES:
        end = min((i for i in (token.find(c, start) for c in "/?#") if i != -1), default=end)
    at = token.rfind("@", start, end)
    colon = token.find(":", start, at) if at != -1 else -1
    if colon == -1 or colon + 1 == at:  # no password, or an empty one: `user:***@` would suggest one
        return token
    return f"{token[: colon + 1]}***{token[at:]}"


def masked_passwords(text: str) -> str:
    """`text` with the password of any `user:password@host`, or `password=...` keyword, in it replaced by `***`: for
    messages, logs and the warehouse's record of a failed run, whatever URL (or mistyped one) they quote."""
    tokens = re.split(r"(\s+)", text)
    return _KEYWORD_PASSWORD.sub(r"\g<key>***", "".join(_masked_token(token) for token in tokens))


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


# The fields of dlt's ConnectionStringCredentials: `[sources.shop.credentials]` in .dlt/secrets.toml, or
# SOURCES__SHOP__CREDENTIALS__<FIELD> variables, instead of the whole URL.
CREDENTIAL_FIELDS = ("drivername", "username", "password", "host", "port", "database", "query")
_CREDENTIALS_VARIABLE = "SOURCES__SHOP__CREDENTIALS"


def configured_shop_url() -> str | None:
    """`sources.shop.credentials` from dlt's providers (SOURCES__SHOP__CREDENTIALS, `.dlt/secrets.toml`,
    `.dlt/config.toml`), where the shop source would find it too; None when it is not configured.

    Either the URL itself or, as dlt documents its credentials, the URL's fields one by one
    (`[sources.shop.credentials]` with drivername, username, password, host, port, database, query; or
    SOURCES__SHOP__CREDENTIALS__HOST and the like), each field looked up as dlt does: an environment variable
    wins over the same field in a TOML file. The URL wins over fields, as in dlt, so fields set in the
    environment beside a URL would be ignored: ConfigError naming them. No error shows a value. As in dlt, the
    fields but the password may sit in `.dlt/config.toml`; the URL and the password may not (dlt reads no secret
    there), so they are refused there rather than left unread for the demo shop to load instead."""
    import dlt

    _refuse_secrets_in_config(_shop_credentials_in_config_files())
    value = dlt.secrets.get("sources.shop.credentials")
    field_variables = sorted(name for name in os.environ if name.upper().startswith(_CREDENTIALS_VARIABLE + "__"))
    if value and not isinstance(value, Mapping):
        if field_variables:
            where = _CREDENTIALS_VARIABLE if _CREDENTIALS_VARIABLE in os.environ else "sources.shop.credentials"
            raise ConfigError(
                f"shop: {', '.join(field_variables)} would be ignored: the shop URL is set as a whole ({where}); "
                "set the URL or its fields, not both"
            )
        return str(value)
    unknown = [
        name for name in field_variables if name[len(_CREDENTIALS_VARIABLE) + 2 :].lower() not in CREDENTIAL_FIELDS
    ]
    unknown += [f"{key} in [sources.shop.credentials]" for key in value or {} if key not in CREDENTIAL_FIELDS]
    if unknown:
        raise ConfigError(
            f"shop: unknown credentials field(s) {', '.join(unknown)}; the fields are {', '.join(CREDENTIAL_FIELDS)}"
        )
    fields = {name: _credentials_field(name) for name in CREDENTIAL_FIELDS}
    fields = {name: field for name, field in fields.items() if field is not None and field != ""}
    if not fields:
        return None
    return _url_of_fields(fields)


def _shop_credentials_in_config_files() -> object:
    """`sources.shop.credentials` as dlt's providers that hold no secrets (`.dlt/config.toml`) have it, whatever the
    secret providers have: `dlt.config.get` answers from the first provider that has the key, so a
    `[sources.shop.credentials]` table in `.dlt/secrets.toml` hid a password left in config.toml, unread."""
    from typing import Any

    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    for provider in Container()[PluggableRunContext].providers.providers:
        if not provider.supports_secrets:
            value, _ = provider.get_value("credentials", Any, None, "sources", "shop")
            if value is not None:
                return value
    return None


def _refuse_secrets_in_config(in_config: object) -> None:
    """Credentials found by dlt's config providers alone: `.dlt/config.toml`, which dlt reads no secret from."""
    if in_config is None or (isinstance(in_config, Mapping) and "password" not in in_config):
        return
    what = "the shop URL" if not isinstance(in_config, Mapping) else "the shop database's password"
    raise ConfigError(
        f"shop: {what} is set in .dlt/config.toml, where dlt reads no secret: move it to .dlt/secrets.toml "
        f"(git-ignored) or {_CREDENTIALS_VARIABLE}"
    )


def _credentials_field(name: str) -> object:
    """One field of the shop's credentials: a secret from dlt's secret providers only, the others from its config
    providers too (`.dlt/config.toml`), as dlt resolves its credentials."""
    import dlt

    key = f"sources.shop.credentials.{name}"
    value = dlt.secrets.get(key)
    return dlt.config.get(key) if value is None and name != "password" else value


def _url_of_fields(fields: dict[str, object]) -> str:
    """The SQLAlchemy URL of credentials given field by field, its special characters escaped."""
    import json

    import sqlalchemy as sa

    def setting(name: str) -> str:
        return f"sources.shop.credentials.{name} ({_CREDENTIALS_VARIABLE}__{name.upper()})"

    if "drivername" not in fields:
        raise ConfigError(
            f"shop: the shop database's credentials set {', '.join(fields)} but no drivername, "
            f"e.g. postgresql+psycopg2: {setting('drivername')}"
        )
    port = fields.get("port")
    if port is not None:
        try:
            port = int(str(port))
        except ValueError:
            raise ConfigError(f"shop: {setting('port')} must be a port number") from None
    query = fields.get("query")
    if isinstance(query, str):  # from an environment variable: JSON, as dlt reads a dict there
        with contextlib.suppress(ValueError):
            query = json.loads(query)
    if query is not None and not isinstance(query, Mapping):  # not shown: it may hold a password
        raise ConfigError(f"shop: {setting('query')} must be a table (in a variable, a JSON object)")
    password = fields.get("password")
    url = sa.URL.create(
        str(fields["drivername"]),
        username=None if fields.get("username") is None else str(fields["username"]),
        password=None if password is None else str(password).strip(),  # as dlt strips it
        host=None if fields.get("host") is None else str(fields["host"]),
        port=port,
        database=None if fields.get("database") is None else str(fields["database"]),
        query={str(key): _query_value(item) for key, item in (query or {}).items()},
    )
    return url.render_as_string(hide_password=False)


def _query_value(value: object) -> str | tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
