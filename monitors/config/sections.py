"""The tables of the configuration other than ``[[systems]]``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PrivateAttr, StrictBool, model_validator

from monitors.config.systems import StrictModel
from monitors.config.types import (
    CHANNEL_PATTERN,
    WEEKDAYS,
    ClockTime,
    EnvName,
    Name,
    NonEmptyStr,
    NonNegativeInt,
    Percent,
    Port,
    PositiveInt,
    SlackChannel,
    SlackChannelId,
    SlackUser,
    SlackUsergroup,
    Url,
    WeeklyTime,
    clean_sku,
    fail,
    parse_clock,
)

Sku = NonEmptyStr
_CHANNEL = re.compile(CHANNEL_PATTERN)


class SkuRules(StrictModel):
    """How raw SKUs become the SKUs Driftwatch compares, and SKU tags."""

    uppercase: StrictBool = True
    strip: StrictBool = True
    remove_chars: str = ""
    aliases: Mapping[Sku, Sku] = Field(default_factory=dict)
    tags: Mapping[Name, tuple[Sku, ...]] = Field(default_factory=dict)
    _aliases: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._aliases = {self.clean(raw): self.clean(canon) for raw, canon in self.aliases.items()}

    def clean(self, raw: str) -> str:
        """Strip, upper-case and drop ``remove_chars``, without applying aliases."""
        return clean_sku(raw, uppercase=self.uppercase, strip=self.strip, remove=self.remove_chars)

    def normalize(self, raw: str) -> str:
        """The canonical SKU: cleaned, then mapped through ``aliases``."""
        sku = self.clean(raw)
        # not self._aliases: pydantic serves private attributes from __getattr__, slowly
        aliases: dict[str, str] = self.__pydantic_private__["_aliases"]  # type: ignore[index]
        return aliases.get(sku, sku)


class PackSize(StrictModel):
    """Units per counted item in one system (an ERP counting cartons of 12)."""

    default: PositiveInt = 1
    skus: Mapping[Sku, PositiveInt] = Field(default_factory=dict)


class Bundle(StrictModel):
    """A SKU sold as a kit of other SKUs."""

    sku: Sku
    components: Annotated[Mapping[Sku, PositiveInt], Field(min_length=1)]


class LocationSafetyStock(StrictModel):
    default: NonNegativeInt | None = None
    skus: Mapping[Sku, NonNegativeInt] = Field(default_factory=dict)


class SafetyStock(StrictModel):
    """Units held back from the storefront on purpose, so not a drift."""

    default: NonNegativeInt = 0
    skus: Mapping[Sku, NonNegativeInt] = Field(default_factory=dict)
    locations: Mapping[Name, LocationSafetyStock] = Field(default_factory=dict)


class Threshold(StrictModel):
    """A difference is a drift when it exceeds ``absolute`` units AND ``percent`` %
    of the source-of-truth count."""

    absolute: NonNegativeInt
    percent: Percent


class TagThreshold(StrictModel):
    """A per-tag override; an unset field keeps the default threshold's value."""

    absolute: NonNegativeInt | None = None
    percent: Percent | None = None


class Thresholds(StrictModel):
    default: Threshold = Threshold(absolute=2, percent=1.0)
    large: Threshold = Threshold(absolute=25, percent=20.0)
    persistence_diffs: PositiveInt = 2
    persistence_seconds: NonNegativeInt | None = None
    tags: Mapping[Name, TagThreshold] = Field(default_factory=dict)


class SlackWriters(StrictModel):
    """Who may trigger writes (resync, adjust, resolve): any listed user, any member
    of a listed user group, anyone acting in a listed channel."""

    users: tuple[SlackUser, ...] = ()
    usergroups: tuple[SlackUsergroup, ...] = ()
    channels: tuple[SlackChannelId, ...] = ()


class SlackSettings(StrictModel):
    bot_token_env: EnvName = "SLACK_BOT_TOKEN"
    signing_secret_env: EnvName = "SLACK_SIGNING_SECRET"
    app_token_env: EnvName = "SLACK_APP_TOKEN"
    api_url: Url | None = None
    alerts_channel: SlackChannel
    reports_channel: SlackChannel = ""
    oncall_usergroup: SlackUsergroup | None = None
    writers: SlackWriters = SlackWriters()

    @model_validator(mode="before")
    @classmethod
    def _default_reports_channel(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "reports_channel" not in data:
            alerts = data.get("alerts_channel")
            if isinstance(alerts, str) and _CHANNEL.fullmatch(alerts):
                return {**data, "reports_channel": alerts}
        return data


class Schedules(StrictModel):
    """Intervals in seconds; times of day in the configuration's ``timezone``."""

    full_diff_seconds: PositiveInt = 900
    health_seconds: PositiveInt = 60
    weekly_summary: WeeklyTime = "mon 09:00"
    daily_adjustments: ClockTime = "09:00"
    reminder_seconds: PositiveInt = 3600
    debounce_seconds: NonNegativeInt = 30

    def weekly_summary_at(self) -> tuple[int, time] | None:
        """(weekday with Monday = 0, time of day), or None when ``"off"``."""
        if self.weekly_summary == "off":
            return None
        day, _, clock = self.weekly_summary.partition(" ")
        at = parse_clock(clock)
        return None if at is None else (WEEKDAYS.index(day), at)

    def daily_adjustments_at(self) -> time | None:
        """Time of the daily adjustments digest, or None when ``"off"``."""
        return parse_clock(self.daily_adjustments)


class Policy(StrictModel):
    """What Driftwatch may write without a person (see ``monitors.policy``)."""

    auto_resync: StrictBool = False
    auto_resync_max_units: PositiveInt = 5
    #: also raise a count automatically (a system showing less than the truth); by
    #: default only lowering is automatic
    auto_resync_raise: StrictBool = False
    shadow_mode: StrictBool = False
    never_auto_tags: tuple[Name, ...] = ("hero",)


class Server(StrictModel):
    host: NonEmptyStr = "127.0.0.1"
    port: Port = 8080


def _database_url(value: str) -> str:
    if "://" not in value:
        fail("not a database URL (e.g. sqlite+aiosqlite:///driftwatch.db)")
    try:
        password = urlsplit(value).password
    except ValueError:
        fail("not a database URL (e.g. sqlite+aiosqlite:///driftwatch.db)")
    if password:
        fail("contains a password — put the whole URL in the environment and use `url_env`")
    return value


class Database(StrictModel):
    """SQLite by default; PostgreSQL (a URL with a password) from ``url_env``."""

    url: Annotated[str, AfterValidator(_database_url)] = "sqlite+aiosqlite:///driftwatch.db"
    url_env: EnvName | None = None
