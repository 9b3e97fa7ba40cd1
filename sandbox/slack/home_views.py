"""``views.publish``: the App Home's Home tab, one view per user, and the rules Slack
applies to it.

What Slack documents, and the fake enforces:

* ``views.publish`` takes ``user_id`` and ``view`` (a JSON-encoded view object) and an
  optional ``hash``; "Create or update the view that comprises an app's Home tab for a
  specific user." A bad ``user_id`` is ``invalid_arguments`` ("invalid `user_id`");
  ``hash`` not matching the stored view is ``hash_conflict``; a view over 250 kB is
  ``view_too_large``; a ``home`` view while the app's Home tab is off is
  ``not_enabled``. (https://api.slack.com/methods/views.publish)
* A Home tab view object: ``type`` is ``home``; ``blocks``, "Max of 100 blocks";
  ``private_metadata`` at most 3000 characters; ``callback_id`` at most 255.
  (https://docs.slack.dev/reference/views/home-tab-views)
* "You can include up to 50 blocks in each message, and 100 blocks in modals or Home
  tabs." (https://docs.slack.dev/reference/block-kit/blocks)
* Section: ``text`` up to 3000 characters; ``fields`` at most 10, each up to 2000.
  Context: at most 10 elements. Header: plain text up to 150. Button: ``text`` up to 75
  characters, ``value`` up to 2000, ``action_id`` up to 255, ``url`` up to 3000.
  (https://docs.slack.dev/reference/block-kit/blocks/section-block,
  .../context-block, .../header-block, .../block-elements/button-element)
* Image block: ``alt_text`` required, at most 2000 characters; "You must provide
  either an image_url or slack_file"; a Slack file object has either ``url`` or
  ``id`` ("If both are provided then the payload will be rejected"), "must be an
  image", "Currently only png, jpg, jpeg, and gif Slack image files are supported", and
  "the user posting these blocks must have access to this file"
  (https://docs.slack.dev/reference/block-kit/blocks/image-block,
  https://docs.slack.dev/reference/block-kit/composition-objects/slack-file-object).
  Here: a file the bot uploaded to this workspace.

State beyond the :class:`~sandbox.slack.model.Workspace` (which view is whose Home, and
whether the Home tab is on) lives in :class:`HomeState`, one per workspace.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sandbox.slack.model import StoredView, Workspace
from sandbox.slack.rules import MAX_VIEW_BLOCKS, ApiError, blocks_arg

if TYPE_CHECKING:
    from sandbox.slack.methods import Request

__all__ = ["HomeState", "check_home_view", "home_state", "views_publish"]

MAX_VIEW_BYTES = 250_000
MAX_PRIVATE_METADATA = 3000
MAX_CALLBACK_ID = 255
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ID = 255
MAX_URL = 3000
MAX_ALT_TEXT = 2000
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")


@dataclass
class HomeState:
    """The Home tab of one workspace: whether the app has it on, and each user's view."""

    enabled: bool = True
    #: user id → the id of the view published to their Home tab
    views: dict[str, str] = field(default_factory=dict)


_STATES: WeakKeyDictionary[Workspace, HomeState] = WeakKeyDictionary()


def home_state(ws: Workspace) -> HomeState:
    """The Home tab state of ``ws`` (created on first use)."""
    state = _STATES.get(ws)
    if state is None:
        state = _STATES[ws] = HomeState()
    return state


def home_view(ws: Workspace, user: str) -> StoredView | None:
    """The view published to ``user``'s Home tab, if any."""
    view_id = home_state(ws).views.get(user)
    return ws.views.get(view_id) if view_id else None


def _invalid(detail: str) -> ApiError:
    return ApiError("invalid_arguments", detail)


def _text_of(obj: object) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _check_element(element: dict[str, Any], where: str) -> None:
    if element.get("type") == "button":
        text = _text_of(element.get("text"))
        if not 0 < len(text) <= MAX_BUTTON_TEXT:
            raise _invalid(f"button text must be 1..{MAX_BUTTON_TEXT} characters [{where}]")
        if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
            raise _invalid(f"button value longer than {MAX_BUTTON_VALUE} [{where}]")
        if len(str(element.get("url", ""))) > MAX_URL:
            raise _invalid(f"button url longer than {MAX_URL} [{where}]")
    if len(str(element.get("action_id", ""))) > MAX_ACTION_ID:
        raise _invalid(f"action_id longer than {MAX_ACTION_ID} [{where}]")


def _check_image(ws: Workspace, block: dict[str, Any], where: str) -> None:
    alt = block.get("alt_text")
    if not isinstance(alt, str) or not 0 < len(alt) <= MAX_ALT_TEXT:
        raise _invalid(f"alt_text must be 1..{MAX_ALT_TEXT} characters [{where}]")
    url, slack_file = block.get("image_url"), block.get("slack_file")
    if (url is None) == (slack_file is None):
        raise _invalid(f"provide either image_url or slack_file [{where}]")
    if slack_file is None:
        return
    if not isinstance(slack_file, dict) or ("id" in slack_file) == ("url" in slack_file):
        raise _invalid(f"slack_file needs either id or url [{where}]")
    if "id" in slack_file:
        file = ws.files.get(str(slack_file["id"]))
    else:
        file = next(
            (f for f in ws.files.values() if str(slack_file["url"]).endswith(f"/{f.filename}")),
            None,
        )
    if file is None or file.content is None:
        raise _invalid(f"slack_file not found [{where}]")
    if file.mimetype not in IMAGE_TYPES:
        raise _invalid(f"slack_file is not a png, jpg or gif image [{where}]")


def check_home_view(ws: Workspace, view: dict[str, Any]) -> None:
    """Raise :class:`ApiError` for a Home tab view Slack would refuse."""
    if view.get("type") != "home":
        raise _invalid("view.type must be home")
    blocks = blocks_arg(view.get("blocks"), limit=MAX_VIEW_BLOCKS)
    if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA:
        raise _invalid(f"private_metadata longer than {MAX_PRIVATE_METADATA}")
    if len(str(view.get("callback_id", ""))) > MAX_CALLBACK_ID:
        raise _invalid(f"callback_id longer than {MAX_CALLBACK_ID}")
    for index, block in enumerate(blocks):
        where = f"/blocks/{index}"
        kind = block.get("type")
        if kind == "section":
            fields = block.get("fields") or []
            if len(fields) > MAX_FIELDS:
                raise _invalid(f"no more than {MAX_FIELDS} fields [{where}/fields]")
            for n, item in enumerate(fields):
                if not 0 < len(_text_of(item)) <= MAX_FIELD_TEXT:
                    raise _invalid(f"field must be 1..{MAX_FIELD_TEXT} characters [{where}/{n}]")
            if isinstance(block.get("accessory"), dict):
                _check_element(block["accessory"], f"{where}/accessory")
        elif kind == "context":
            if len(block.get("elements") or []) > MAX_CONTEXT_ELEMENTS:
                raise _invalid(f"no more than {MAX_CONTEXT_ELEMENTS} elements [{where}]")
        elif kind == "actions":
            for n, element in enumerate(block.get("elements") or []):
                _check_element(element, f"{where}/elements/{n}")
        elif kind == "image":
            _check_image(ws, block, where)


def _hash(view: dict[str, Any], version: int) -> str:
    digest = hashlib.sha1(json.dumps(view, sort_keys=True).encode(), usedforsecurity=False)
    return f"{version}.{digest.hexdigest()[:10]}"


def views_publish(req: Request) -> dict[str, Any]:
    user = req.arg("user_id", required=False)
    if user not in req.ws.users or req.ws.users[user].is_bot:
        raise _invalid("invalid `user_id`")
    raw = req.args.get("view")
    if isinstance(raw, str) and len(raw.encode()) > MAX_VIEW_BYTES:
        raise ApiError("view_too_large")
    view = req.json_arg("view")
    if not isinstance(view, dict):
        raise _invalid("view must be a JSON object")
    if len(json.dumps(view).encode()) > MAX_VIEW_BYTES:
        raise ApiError("view_too_large")
    state = home_state(req.ws)
    if not state.enabled:
        raise ApiError("not_enabled")
    check_home_view(req.ws, view)
    stored = home_view(req.ws, user)
    expected = req.arg("hash", required=False)
    if stored is not None and expected and expected != stored.hash:
        raise ApiError("hash_conflict")
    if stored is None:
        view_id = req.ws.next_id("V")
        stored = StoredView(view_id, user, view, _hash(view, 1), view_id, None, req.ws.clock.now())
        req.ws.views[view_id] = stored
        state.views[user] = view_id
    else:
        stored.view = view
        stored.hash = _hash(view, len(stored.history) + 1)
    stored.history.append(view)
    return {"view": stored.to_api()}
