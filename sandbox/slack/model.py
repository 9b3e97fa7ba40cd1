"""The fake Slack workspace's state: channels, messages, threads, files, views.

Everything here is plain data so that tests can inspect it and a browser page can
render it. Timestamps (``ts``) are Slack-shaped strings (``"1793610000.000100"``),
derived from the injected clock and strictly increasing across the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Call",
    "Channel",
    "Clock",
    "Ephemeral",
    "Message",
    "ResponseUrl",
    "ResponseUrlPost",
    "StoredFile",
    "StoredView",
    "User",
    "Workspace",
]

TEAM_ID = "T0SANDBOX"
BOT_USER_ID = "U0DRIFTBOT"
BOT_ID = "B0DRIFTBOT"
APP_ID = "A0DRIFTAPP"
BOT_NAME = "driftwatch"


class Clock(Protocol):
    """The time source the fake reads (aware UTC datetimes)."""

    def now(self) -> datetime: ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str
    is_bot: bool = False
    tz: str = "Europe/Paris"

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_admin": False,
            "tz": self.tz,
            "profile": {
                "real_name": self.real_name,
                "display_name": self.name,
                "email": f"{self.name}@sandbox.example",
            },
        }


@dataclass
class Edit:
    """What a message said before a ``chat.update``."""

    text: str
    blocks: list[dict[str, Any]]
    at: datetime


@dataclass
class Message:
    """A message in a channel (top level or a thread reply)."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    deleted: bool = False

    @property
    def is_bot(self) -> bool:
        return self.user == BOT_USER_ID

    @property
    def edited(self) -> bool:
        return bool(self.edits)

    def to_api(self, *, metadata: bool = True) -> dict[str, Any]:
        """The message as Slack's API shows it (``metadata``: with its metadata, which
        conversations.history and .replies return only when asked to)."""
        out: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
            "team": TEAM_ID,
        }
        if self.is_bot:
            out.update(bot_id=BOT_ID, app_id=APP_ID)
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out.update(files=self.files, upload=True)
        if self.edits:
            out["edited"] = {"user": self.user, "ts": self.ts}
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in self.reactions.items()
            ]
        if metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Channel:
    id: str
    name: str
    created: datetime
    is_im: bool = False
    messages: list[Message] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_im,
            "is_im": self.is_im,
            "is_private": False,
            "is_archived": False,
            "is_member": True,
            "created": int(self.created.timestamp()),
        }


@dataclass
class Ephemeral:
    """A message only ``user`` sees (``chat.postEphemeral`` or a response_url)."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    at: datetime


@dataclass
class StoredView:
    """A modal (or home tab) the app opened, with each version it was given."""

    id: str
    user: str
    view: dict[str, Any]
    hash: str
    root_view_id: str
    previous_view_id: str | None
    opened_at: datetime
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "type": self.view.get("type", "modal"),
            "blocks": self.view.get("blocks", []),
            "private_metadata": self.view.get("private_metadata", ""),
            "callback_id": self.view.get("callback_id", ""),
            "external_id": self.view.get("external_id", ""),
            "title": self.view.get("title"),
            "submit": self.view.get("submit"),
            "close": self.view.get("close"),
            "state": {"values": {}},
            "hash": self.hash,
            "clear_on_close": bool(self.view.get("clear_on_close", False)),
            "notify_on_close": bool(self.view.get("notify_on_close", False)),
            "root_view_id": self.root_view_id,
            "previous_view_id": self.previous_view_id,
        }


@dataclass
class StoredFile:
    """A file uploaded through ``files.getUploadURLExternal``."""

    id: str
    filename: str
    length: int
    alt_txt: str | None
    created: datetime
    content: bytes | None = None
    title: str | None = None
    shared_to: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def mimetype(self) -> str:
        data = self.content or b""
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png"
        if data.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if self.filename.endswith(".csv"):
            return "text/csv"
        return "application/octet-stream"

    def to_api(self, base_url: str) -> dict[str, Any]:
        url = f"{base_url}/files/{self.id}/{self.filename}"
        return {
            "id": self.id,
            "created": int(self.created.timestamp()),
            "name": self.filename,
            "title": self.title or self.filename,
            "mimetype": self.mimetype,
            "filetype": self.mimetype.rsplit("/", 1)[-1],
            "user": BOT_USER_ID,
            "size": len(self.content or b""),
            "url_private": url,
            "url_private_download": url,
            "permalink": url,
            "alt_txt": self.alt_txt,
        }


@dataclass
class ResponseUrl:
    """A ``response_url`` handed to the app with a command or an action."""

    id: str
    channel: str
    user: str
    message_ts: str | None
    issued_at: datetime
    uses: int = 0


@dataclass
class ResponseUrlPost:
    url_id: str
    body: dict[str, Any]
    status: int
    error: str | None
    at: datetime


@dataclass(frozen=True)
class Call:
    """One Web API call the fake answered (``method`` is e.g. ``chat.postMessage``)."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int
    ok: bool
    error: str | None
    at: datetime


class Workspace:
    """All the state, with ids and timestamps issued in order."""

    def __init__(
        self,
        clock: Clock,
        channels: dict[str, str],
        users: list[User],
        groups: dict[str, list[str]],
    ) -> None:
        self.clock = clock
        now = clock.now()
        self.channels: dict[str, Channel] = {
            cid: Channel(cid, name, now) for cid, name in channels.items()
        }
        bot = User(BOT_USER_ID, BOT_NAME, "Driftwatch", is_bot=True)
        self.users: dict[str, User] = {u.id: u for u in [*users, bot]}
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in groups.items()}
        self.ephemerals: list[Ephemeral] = []
        self.views: dict[str, StoredView] = {}
        self.files: dict[str, StoredFile] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.response_url_posts: list[ResponseUrlPost] = []
        self.trigger_ids: dict[str, tuple[str, datetime]] = {}
        self._last_us = 0
        self._counter = 0

    def next_ts(self) -> str:
        micros = int(self.clock.now().timestamp() * 1_000_000)
        self._last_us = max(micros, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}0SBX{self._counter:06d}"

    def resolve_channel(self, ref: str) -> Channel | None:
        """A channel by id, ``#name``/``name``, or a user id (opens a DM)."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name and not channel.is_im:
                return channel
        if ref in self.users:
            dm_id = "D" + ref[1:]
            if dm_id not in self.channels:
                self.channels[dm_id] = Channel(dm_id, ref, self.clock.now(), is_im=True)
            return self.channels[dm_id]
        return None

    def find(self, channel: str, ts: str) -> Message | None:
        for message in self.channels[channel].messages:
            if message.ts == ts and not message.deleted:
                return message
        return None

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        return [m for m in self.channels[channel].messages if not m.deleted and m.thread_ts is None]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent followed by its replies, oldest first."""
        return [
            m
            for m in self.channels[channel].messages
            if not m.deleted and (m.ts == ts or m.thread_ts == ts)
        ]
