"""The Web API methods the fake implements, one function each.

A method takes the :class:`Request` (the workspace, the merged arguments, the server's
base URL) and returns the success body; failures raise :class:`ApiError` (HTTP 200,
``ok: false``) or :class:`RateLimited` (HTTP 429). Arguments arrive as strings when
form- or query-encoded and as JSON values when the SDK sends JSON; the helpers below
read both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sandbox.slack.home_views import views_publish
from sandbox.slack.model import (
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    TEAM_ID,
    Edit,
    Ephemeral,
    Message,
    StoredFile,
    StoredView,
    Workspace,
)
from sandbox.slack.rules import (
    MAX_VIEW_BLOCKS,
    ApiError,
    TokenBucket,
    blocks_arg,
    check_message,
    check_metadata,
)

__all__ = ["METHODS", "RateLimited", "Request"]

TRIGGER_TTL = timedelta(seconds=3)
MAX_VIEW_STACK = 3


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("ratelimited")
        self.retry_after = retry_after


@dataclass
class Request:
    ws: Workspace
    args: dict[str, Any]
    base_url: str
    buckets: dict[str, TokenBucket]
    bucket_capacity: float
    bucket_rate: float

    def arg(self, name: str, *, required: bool = True) -> str:
        value = self.args.get(name)
        if value is None or value == "":
            if required:
                raise ApiError("invalid_arguments", f"missing required field: {name}")
            return ""
        return value if isinstance(value, str) else json.dumps(value)

    def json_arg(self, name: str) -> Any:
        value = self.args.get(name)
        if isinstance(value, str) and value:
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ApiError("invalid_arguments", f"{name} is not valid JSON") from exc
        return value

    def channel(self, name: str = "channel") -> str:
        channel = self.ws.resolve_channel(self.arg(name, required=False))
        if channel is None:
            raise ApiError("channel_not_found")
        return channel.id

    def message(self, channel: str, name: str = "ts") -> Message:
        found = self.ws.find(channel, self.arg(name))
        if found is None:
            raise ApiError("message_not_found")
        return found


Method = Callable[[Request], dict[str, Any]]


def auth_test(req: Request) -> dict[str, Any]:
    return {
        "url": "https://driftwatch-sandbox.slack.com/",
        "team": "Driftwatch Sandbox",
        "user": BOT_NAME,
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def _content(req: Request) -> tuple[str, list[dict[str, Any]]]:
    blocks = blocks_arg(req.args.get("blocks"))
    text = check_message(req.args.get("text"), blocks, req.args.get("attachments"))
    return text, blocks


def _thread(req: Request, channel: str) -> str | None:
    thread_ts = req.arg("thread_ts", required=False) or None
    if thread_ts is None:
        return None
    parent = req.ws.find(channel, thread_ts)
    if parent is None:
        raise ApiError("thread_not_found")
    return parent.thread_ts or parent.ts


def chat_post_message(req: Request) -> dict[str, Any]:
    channel = req.channel()
    now = req.ws.clock.now()
    bucket = req.buckets.setdefault(channel, TokenBucket(req.bucket_capacity, req.bucket_rate, now))
    wait = bucket.take(now)
    if wait:
        raise RateLimited(wait)
    text, blocks = _content(req)
    metadata = check_metadata(req.args.get("metadata"))
    thread_ts = _thread(req, channel)
    message = Message(channel, req.ws.next_ts(), BOT_USER_ID, text, blocks, thread_ts)
    message.metadata = metadata
    req.ws.channels[channel].messages.append(message)
    return {"channel": channel, "ts": message.ts, "message": message.to_api()}


def chat_update(req: Request) -> dict[str, Any]:
    channel = req.channel()
    message = req.message(channel)
    if not message.is_bot:
        raise ApiError("cant_update_message")
    text, blocks = _content(req)
    metadata = check_metadata(req.args.get("metadata"))
    message.edits.append(Edit(message.text, message.blocks, req.ws.clock.now()))
    message.text, message.blocks = text, blocks
    if metadata is not None:
        message.metadata = metadata
    return {"channel": channel, "ts": message.ts, "text": text, "message": message.to_api()}


def chat_delete(req: Request) -> dict[str, Any]:
    channel = req.channel()
    message = req.message(channel)
    if not message.is_bot:
        raise ApiError("cant_delete_message")
    message.deleted = True
    return {"channel": channel, "ts": message.ts}


def chat_post_ephemeral(req: Request) -> dict[str, Any]:
    channel = req.channel()
    user = req.arg("user")
    if user not in req.ws.users:
        raise ApiError("user_not_in_channel")
    text, blocks = _content(req)
    thread_ts = _thread(req, channel)
    ts = req.ws.next_ts()
    ephemeral = Ephemeral(channel, user, ts, text, blocks, thread_ts, req.ws.clock.now())
    req.ws.ephemerals.append(ephemeral)
    return {"message_ts": ts}


#: conversations.history: "limit ... Maximum of 999"; default 100 —
#: https://docs.slack.dev/reference/methods/conversations.history
HISTORY_LIMIT = 999
#: conversations.replies: default 1000 —
#: https://docs.slack.dev/reference/methods/conversations.replies
REPLIES_LIMIT = 1000


def _flag(req: Request, name: str) -> bool:
    return str(req.args.get(name, "")).lower() in ("1", "true")


def _ts_arg(req: Request, name: str) -> float | None:
    value = req.arg(name, required=False)
    if not value:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise ApiError(f"invalid_ts_{name}") from exc


def _page(req: Request, messages: list[Message], default: int, maximum: int) -> dict[str, Any]:
    """One cursor page of ``messages`` (already in answer order), within oldest/latest.

    "oldest: Only messages after this Unix timestamp will be included", "latest: Only
    messages before this Unix timestamp", "inclusive: Include messages with oldest or
    latest timestamps in results", "include_all_metadata: Return all metadata associated
    with this message" (default false) — conversations.history and conversations.replies.
    """
    oldest, latest = _ts_arg(req, "oldest"), _ts_arg(req, "latest")
    inclusive = _flag(req, "inclusive")
    if oldest is not None:
        messages = [
            m for m in messages if float(m.ts) > oldest or (inclusive and float(m.ts) == oldest)
        ]
    if latest is not None:
        messages = [
            m for m in messages if float(m.ts) < latest or (inclusive and float(m.ts) == latest)
        ]
    try:
        limit = int(req.arg("limit", required=False) or default)
        start = int(req.arg("cursor", required=False).removeprefix("next:") or 0)
    except ValueError as exc:
        raise ApiError("invalid_cursor") from exc
    limit = max(1, min(limit, maximum))
    page = messages[start : start + limit]
    more = start + limit < len(messages)
    metadata = _flag(req, "include_all_metadata")
    return {
        "messages": [m.to_api(metadata=metadata) for m in page],
        "has_more": more,
        "response_metadata": {"next_cursor": f"next:{start + limit}" if more else ""},
    }


def _channel_id(req: Request) -> str:
    """The conversation by id only: "channel: Conversation ID to fetch history for"."""
    channel = req.arg("channel", required=False)
    if channel not in req.ws.channels:
        raise ApiError("channel_not_found")
    return channel


def conversations_history(req: Request) -> dict[str, Any]:
    """Top-level messages, newest first (thread replies are not in a channel's history)."""
    channel = _channel_id(req)
    messages = list(reversed(req.ws.messages(channel)))
    return _page(req, messages, 100, HISTORY_LIMIT)


def conversations_replies(req: Request) -> dict[str, Any]:
    """A thread: its parent, then its replies oldest first."""
    channel = _channel_id(req)
    parent = req.ws.find(channel, req.arg("ts"))
    if parent is None:
        raise ApiError("thread_not_found")
    root = parent.thread_ts or parent.ts
    return _page(req, req.ws.thread(channel, root), REPLIES_LIMIT, REPLIES_LIMIT)


def reactions_add(req: Request) -> dict[str, Any]:
    channel = req.channel()
    message = req.message(channel, "timestamp")
    name = req.arg("name").strip(":")
    users = message.reactions.setdefault(name, [])
    if BOT_USER_ID in users:
        raise ApiError("already_reacted")
    users.append(BOT_USER_ID)
    return {}


def conversations_info(req: Request) -> dict[str, Any]:
    channel = req.ws.channels.get(req.arg("channel", required=False))
    if channel is None:
        raise ApiError("channel_not_found")
    return {"channel": channel.to_api()}


def users_info(req: Request) -> dict[str, Any]:
    user = req.ws.users.get(req.arg("user", required=False))
    if user is None:
        raise ApiError("user_not_found")
    return {"user": user.to_api()}


def usergroups_users_list(req: Request) -> dict[str, Any]:
    members = req.ws.usergroups.get(req.arg("usergroup", required=False))
    if members is None:
        raise ApiError("no_such_subteam")
    return {"users": list(members)}


def files_get_upload_url_external(req: Request) -> dict[str, Any]:
    filename = req.arg("filename")
    try:
        length = int(req.arg("length"))
    except ValueError as exc:
        raise ApiError("invalid_arguments", "length must be an integer") from exc
    alt_txt = req.arg("alt_txt", required=False) or None
    file = StoredFile(req.ws.next_id("F"), filename, length, alt_txt, req.ws.clock.now())
    req.ws.files[file.id] = file
    return {"upload_url": f"{req.base_url}/upload/v1/{file.id}", "file_id": file.id}


def files_complete_upload_external(req: Request) -> dict[str, Any]:
    entries = req.json_arg("files")
    if not isinstance(entries, list) or not entries:
        raise ApiError("invalid_arguments", "files must be a non-empty JSON array")
    channel = req.channel("channel_id") if req.args.get("channel_id") else None
    thread_ts = _thread(req, channel) if channel else None
    uploaded: list[StoredFile] = []
    for entry in entries:
        file = req.ws.files.get(entry.get("id", "")) if isinstance(entry, dict) else None
        if file is None or file.content is None:
            raise ApiError("file_not_found")
        file.title = entry.get("title") or file.filename
        uploaded.append(file)
    if channel is not None:
        text = req.arg("initial_comment", required=False)
        shared = [f.to_api(req.base_url) for f in uploaded]
        message = Message(channel, req.ws.next_ts(), BOT_USER_ID, text, [], thread_ts, shared)
        req.ws.channels[channel].messages.append(message)
        for file in uploaded:
            file.shared_to.append((channel, thread_ts))
    return {"files": [f.to_api(req.base_url) for f in uploaded]}


def _view_arg(req: Request) -> dict[str, Any]:
    view = req.json_arg("view")
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise ApiError("invalid_arguments", "view must be an object with type modal or home")
    blocks_arg(view.get("blocks"), limit=MAX_VIEW_BLOCKS)
    if view["type"] == "modal":
        title = view.get("title")
        if not isinstance(title, dict) or not 0 < len(str(title.get("text", ""))) <= 24:
            raise ApiError("invalid_arguments", "title must be plain_text of 1..24 characters")
    return view


def _trigger(req: Request) -> str:
    issued = req.ws.trigger_ids.pop(req.arg("trigger_id"), None)
    if issued is None:
        raise ApiError("invalid_trigger_id")
    user, at = issued
    if req.ws.clock.now() - at > TRIGGER_TTL:
        raise ApiError("expired_trigger_id")
    return user


def _hash(view: dict[str, Any], version: int) -> str:
    digest = hashlib.sha1(json.dumps(view, sort_keys=True).encode(), usedforsecurity=False)
    return f"{version}.{digest.hexdigest()[:10]}"


def views_open(req: Request) -> dict[str, Any]:
    view = _view_arg(req)
    user = _trigger(req)
    view_id = req.ws.next_id("V")
    stored = StoredView(view_id, user, view, _hash(view, 1), view_id, None, req.ws.clock.now())
    stored.history.append(view)
    req.ws.views[view_id] = stored
    return {"view": stored.to_api()}


def views_push(req: Request) -> dict[str, Any]:
    view = _view_arg(req)
    user = _trigger(req)
    below = [v for v in req.ws.views.values() if v.user == user]
    if not below:
        raise ApiError("not_found", "no open view to push onto")
    top = below[-1]
    depth = sum(1 for v in below if v.root_view_id == top.root_view_id)
    if depth >= MAX_VIEW_STACK:
        raise ApiError("push_limit_reached")
    view_id = req.ws.next_id("V")
    stored = StoredView(
        view_id, user, view, _hash(view, 1), top.root_view_id, top.id, req.ws.clock.now()
    )
    stored.history.append(view)
    req.ws.views[view_id] = stored
    return {"view": stored.to_api()}


def views_update(req: Request) -> dict[str, Any]:
    view = _view_arg(req)
    view_id = req.arg("view_id", required=False)
    external_id = req.arg("external_id", required=False)
    stored = req.ws.views.get(view_id) if view_id else None
    if stored is None and external_id:
        stored = next(
            (v for v in req.ws.views.values() if v.view.get("external_id") == external_id), None
        )
    if stored is None:
        raise ApiError("not_found")
    expected = req.arg("hash", required=False)
    if expected and expected != stored.hash:
        raise ApiError("hash_conflict")
    stored.view = view
    stored.history.append(view)
    stored.hash = _hash(view, len(stored.history))
    return {"view": stored.to_api()}


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "reactions.add": reactions_add,
    "conversations.info": conversations_info,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "users.info": users_info,
    "usergroups.users.list": usergroups_users_list,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
    "views.open": views_open,
    "views.update": views_update,
    "views.push": views_push,
    "views.publish": views_publish,
}
