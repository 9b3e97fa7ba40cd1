"""The value types a configuration is made of, each with a human error message.

Every check raises :func:`fail`, a pydantic error of type ``driftwatch`` whose
message is shown to the user as is (see ``messages.py``).
"""

from __future__ import annotations

import codecs
import re
import sys
import zoneinfo
from datetime import time
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, StrictFloat, StrictInt
from pydantic_core import PydanticCustomError

from ledger.storable import storable_text

#: Inventory states Driftwatch knows (the same names as ``connectors.levels.STATES``,
#: repeated here because the configuration imports nothing from connectors/).
STATES: tuple[str, ...] = (
    "on_hand",
    "available",
    "committed",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
    "incoming",
)

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: Hosts on which plain http is allowed (the sandbox).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

#: Prefixes of real Slack and Shopify secrets: a ``*_env`` value starting with one
#: of these is a secret pasted where a variable name belongs.
SECRET_PREFIXES: tuple[str, ...] = (
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxe",
    "xapp-",
    "shpat_",
    "shpca_",
    "shppa_",
    "shpss_",
)

ERROR_TYPE = "driftwatch"


def fail(message: str) -> NoReturn:
    """Reject a value with ``message``, shown to the user verbatim."""
    raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})


def _regex_check(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            fail(message)
        return value

    return AfterValidator(check)


def _nonempty(value: str) -> str:
    if not value.strip():
        fail("must not be empty")
    return value


def _state(value: str) -> str:
    if value not in STATES:
        fail(f"not an inventory state (known: {', '.join(STATES)})")
    return value


def _percent(value: float) -> float:
    if not 0.0 <= value <= 100.0:
        fail("must be between 0 and 100")
    return value


def _env_name(value: str) -> str:
    if value.startswith(SECRET_PREFIXES):
        fail(
            "looks like a secret, not the name of an environment variable — "
            "put the secret in the environment and name the variable here"
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        fail("not an environment variable name (letters, digits and _, e.g. SHOPIFY_TOKEN)")
    return value


def check_url(value: str) -> str:
    """An http(s) URL without credentials, query or fragment; http only on loopback."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        fail("not a URL")
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in value):
        fail("not a URL")
    if parts.username is not None or parts.password is not None:
        fail("must not contain credentials — name them with `*_env` keys")
    if parts.query or parts.fragment:
        fail("must not have a query or fragment")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        fail("must use https (http is allowed only for 127.0.0.1 or localhost)")
    return value.rstrip("/")


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except Exception:
        fail("unknown time zone (use an IANA name such as Europe/Berlin or UTC)")
    return value


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except Exception:
        fail("unknown text encoding (e.g. utf-8, utf-8-sig, cp1252)")
    return value


def _delimiter(value: str) -> str:
    if len(value) != 1 or value in '\r\n"':
        fail('must be a single character such as "," or ";" or "\\t"')
    return value


def _glob(value: str) -> str:
    _nonempty(value)
    if "/" in value or "\\" in value:
        fail("must be a file name pattern such as *.csv, not a path")
    return value


def _sku_pattern(value: str) -> str:
    _nonempty(value)
    if len(value) > 100 or any(c.isspace() for c in value):
        fail("must be a SKU or a SKU pattern such as EU-* (no spaces, at most 100 characters)")
    return value


def _write_path(value: str) -> str:
    if not value.startswith("/"):
        fail("must start with /")
    names = re.findall(r"\{([^{}]*)\}", value)
    unknown = sorted({n for n in names if n not in ("sku", "location")})
    if unknown:
        fail(f"unknown placeholder {{{unknown[0]}}} (use {{sku}} and {{location}})")
    if "sku" not in names:
        fail("must contain {sku}")
    return value


def _directory(value: Any) -> Any:
    if not isinstance(value, str | Path) or not str(value).strip():
        fail("must be a directory path (a string)")
    return value


def _clock(value: Any) -> Any:
    """``"09:00"`` (a TOML local time works too) or ``"off"``; normalized to HH:MM."""
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if not isinstance(value, str):
        fail('must be a time of day such as "09:00", or "off"')
    text = value.strip().lower()
    if text == "off":
        return "off"
    parsed = _parse_hhmm(text)
    if parsed is None:
        fail('must be a time of day such as "09:00", or "off"')
    return parsed.strftime("%H:%M")


def _weekly(value: Any) -> Any:
    """``"mon 09:00"`` or ``"off"``; normalized to a three-letter day and HH:MM."""
    message = 'must be a day and a time such as "mon 09:00", or "off"'
    if not isinstance(value, str):
        fail(message)
    text = value.strip().lower()
    if text == "off":
        return "off"
    day, _, clock = text.partition(" ")
    if day in _FULL_WEEKDAYS:
        day = day[:3]
    parsed = _parse_hhmm(clock.strip())
    if day not in WEEKDAYS or parsed is None:
        fail(message)
    return f"{day} {parsed.strftime('%H:%M')}"


def _parse_hhmm(text: str) -> time | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return time(int(match[1]), int(match[2]))


def parse_clock(value: str) -> time | None:
    """The time of a normalized ``"HH:MM"`` value, or None for ``"off"``."""
    return None if value == "off" else _parse_hhmm(value)


NonEmptyStr = Annotated[str, AfterValidator(_nonempty)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Port = Annotated[StrictInt, Field(ge=0, le=65535)]
Percent = Annotated[StrictFloat, AfterValidator(_percent)]
Name = Annotated[
    str,
    _regex_check(
        r"[a-z][a-z0-9_-]{0,39}",
        "must be a lowercase name: letters, digits, - and _, starting with a letter",
    ),
]
State = Annotated[str, AfterValidator(_state)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Url = Annotated[str, AfterValidator(check_url)]
Timezone = Annotated[str, AfterValidator(_timezone)]
Encoding = Annotated[str, AfterValidator(_encoding)]
Delimiter = Annotated[str, AfterValidator(_delimiter)]
Glob = Annotated[str, AfterValidator(_glob)]
#: A SKU glob pattern (``*``, ``?``, ``[...]``), compared without regard to case.
SkuPattern = Annotated[str, AfterValidator(_sku_pattern)]
WritePath = Annotated[str, AfterValidator(_write_path)]
ApiPath = Annotated[str, _regex_check(r"/\S*", "must be a path starting with /")]
DottedPath = Annotated[
    str,
    _regex_check(r"[^.\s]+(\.[^.\s]+)*", "must be a dotted path such as data.items or qty.on_hand"),
]
#: A DNS host name such as ``shop.myshopify.com`` (no scheme, port or path).
Hostname = Annotated[
    str,
    _regex_check(
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}",
        "must be a host name such as shop.myshopify.com (no https://, port or path)",
    ),
]
HeaderName = Annotated[str, _regex_check(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "not an HTTP header name")]
ApiVersion = Annotated[
    str,
    _regex_check(
        r"\d{4}-(01|04|07|10)", "must be a Shopify API version such as 2026-07 (YYYY-MM, quarterly)"
    ),
]
SlackUser = Annotated[str, _regex_check(r"[UW][A-Z0-9]{2,}", "not a Slack user id (U… or W…)")]
SlackUsergroup = Annotated[str, _regex_check(r"S[A-Z0-9]{2,}", "not a Slack user group id (S…)")]
SlackChannelId = Annotated[
    str, _regex_check(r"[CG][A-Z0-9]{2,}", "not a Slack channel id (C… or G…)")
]
CHANNEL_PATTERN = r"[CG][A-Z0-9]{2,}|#[a-z0-9][a-z0-9._-]{0,79}"
SlackChannel = Annotated[
    str,
    _regex_check(
        CHANNEL_PATTERN,
        "not a Slack channel (an id such as C0123ABCD, or #name)",
    ),
]
ClockTime = Annotated[str, BeforeValidator(_clock)]
WeeklyTime = Annotated[str, BeforeValidator(_weekly)]
Directory = Annotated[Path, BeforeValidator(_directory)]


def clean_sku(raw: str, *, uppercase: bool = True, strip: bool = True, remove: str = "") -> str:
    """A SKU as Driftwatch compares it: stripped, upper-cased, ``remove`` chars dropped,
    and storable: a NUL or a lone surrogate (which other systems can send and PostgreSQL
    cannot store) becomes U+FFFD, so one such SKU does not fail a whole read's record."""
    text = raw.strip() if strip else raw
    if not text.isascii() or "\x00" in text:  # the check is cheap; most SKUs are ASCII
        text = storable_text(text)
    if uppercase:
        text = text.upper()
        remove += remove.upper()
    if remove:
        text = text.translate({ord(c): None for c in remove})
    # One string per SKU however many systems and levels name it: a full read of
    # 100,000 SKUs × 5 locations in three systems holds 1.5 million levels.
    return sys.intern(text)
