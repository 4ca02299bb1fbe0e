"""Block Kit and modal checks of the Slack stand-in (spec/chat.md §5.7).

Slack rejects a message whose blocks break a limit with ``invalid_blocks`` and a modal with
``invalid_arguments``; both carry ``response_metadata.messages`` naming the offending field as a
JSON pointer.  These pure functions return those messages (an empty list means valid).  They cover
the limits a bot is likely to hit, not every rule of the Block Kit schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MESSAGE_MAX_BLOCKS = 50
MODAL_MAX_BLOCKS = 100
BLOCK_ID_MAX = 255
ACTION_ID_MAX = 255
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
URL_MAX = 3000
PLACEHOLDER_MAX = 150
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
OPTIONS_MAX = 100
LABEL_MAX = 2000
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
IMAGE_ALT_MAX = 2000
MODAL_TITLE_MAX = 24
CALLBACK_ID_MAX = 255
PRIVATE_METADATA_MAX = 3000
EXTERNAL_ID_MAX = 255

TEXT_TYPES = ("plain_text", "mrkdwn")
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)


class _Errors:
    """Collects ``[ERROR] … [json-pointer:…]`` messages the way Slack words them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, pointer: str, problem: str) -> None:
        self.messages.append(f"[ERROR] {problem} [json-pointer:{pointer}]")

    def max_len(self, pointer: str, value: object, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(pointer, f"must be less than {limit + 1} characters")

    def text(
        self, pointer: str, obj: object, limit: int, *, plain: bool = False, required: bool = True
    ) -> None:
        """A text object: ``{"type": "plain_text"|"mrkdwn", "text": "…"}`` within ``limit``."""
        if obj is None:
            if required:
                self.add(pointer, "missing required field")
            return
        if not isinstance(obj, dict):
            self.add(pointer, "must be an object")
            return
        allowed = ("plain_text",) if plain else TEXT_TYPES
        if obj.get("type") not in allowed:
            self.add(f"{pointer}/type", f"must be one of {', '.join(allowed)}")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.add(f"{pointer}/text", "must be more than 0 characters")
            return
        self.max_len(f"{pointer}/text", text, limit)


def block_errors(blocks: object, *, max_blocks: int, pointer: str = "/blocks") -> list[str]:
    """Slack's complaints about a ``blocks`` array; ``[]`` when it is acceptable."""
    errors = _Errors()
    if not isinstance(blocks, list):
        errors.add(pointer, "must be an array")
        return errors.messages
    if len(blocks) > max_blocks:
        errors.add(pointer, f"no more than {max_blocks} items allowed")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.add(here, "missing required field: type")
            continue
        kind = block["type"]
        if kind not in BLOCK_TYPES:
            errors.add(f"{here}/type", f"unsupported type: {kind}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            errors.max_len(f"{here}/block_id", block_id, BLOCK_ID_MAX)
            if block_id in seen_ids:
                errors.add(f"{here}/block_id", f"duplicate block_id: {block_id}")
            seen_ids.add(block_id)
        check = _BLOCK_CHECKS.get(kind)
        if check is not None:
            check(errors, here, block)
    return errors.messages


def _section(errors: _Errors, here: str, block: dict[str, Any]) -> None:
    fields = block.get("fields")
    if block.get("text") is None and not fields:
        errors.add(here, "must provide either text or fields")
    errors.text(f"{here}/text", block.get("text"), SECTION_TEXT_MAX, required=False)
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > SECTION_FIELDS_MAX:
            errors.add(f"{here}/fields", f"no more than {SECTION_FIELDS_MAX} items allowed")
        else:
            for j, field in enumerate(fields):
                errors.text(f"{here}/fields/{j}", field, SECTION_FIELD_TEXT_MAX)
    if block.get("accessory") is not None:
        _element(errors, f"{here}/accessory", block["accessory"])


def _header(errors: _Errors, here: str, block: dict[str, Any]) -> None:
    errors.text(f"{here}/text", block.get("text"), HEADER_TEXT_MAX, plain=True)


def _actions(errors: _Errors, here: str, block: dict[str, Any]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        errors.add(f"{here}/elements", "must provide at least 1 item")
        return
    if len(elements) > ACTIONS_ELEMENTS_MAX:
        errors.add(f"{here}/elements", f"no more than {ACTIONS_ELEMENTS_MAX} items allowed")
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        _element(errors, f"{here}/elements/{j}", element)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id is not None and action_id in action_ids:
            errors.add(f"{here}/elements/{j}/action_id", f"duplicate action_id: {action_id}")
        if action_id is not None:
            action_ids.add(action_id)


def _context(errors: _Errors, here: str, block: dict[str, Any]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        errors.add(f"{here}/elements", "must provide at least 1 item")
        return
    if len(elements) > CONTEXT_ELEMENTS_MAX:
        errors.add(f"{here}/elements", f"no more than {CONTEXT_ELEMENTS_MAX} items allowed")
    for j, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") == "image":
            errors.max_len(f"{here}/elements/{j}/alt_text", element.get("alt_text"), IMAGE_ALT_MAX)
        else:
            errors.text(f"{here}/elements/{j}", element, SECTION_TEXT_MAX)


def _image(errors: _Errors, here: str, block: dict[str, Any]) -> None:
    if not block.get("image_url") and not block.get("slack_file"):
        errors.add(here, "must provide either image_url or slack_file")
    errors.max_len(f"{here}/image_url", block.get("image_url"), URL_MAX)
    if not isinstance(block.get("alt_text"), str):
        errors.add(f"{here}/alt_text", "missing required field")
    errors.max_len(f"{here}/alt_text", block.get("alt_text"), IMAGE_ALT_MAX)
    errors.text(f"{here}/title", block.get("title"), LABEL_MAX, plain=True, required=False)


def _input(errors: _Errors, here: str, block: dict[str, Any]) -> None:
    errors.text(f"{here}/label", block.get("label"), LABEL_MAX, plain=True)
    errors.text(f"{here}/hint", block.get("hint"), LABEL_MAX, plain=True, required=False)
    if block.get("element") is None:
        errors.add(f"{here}/element", "missing required field")
    else:
        _element(errors, f"{here}/element", block["element"])


_BLOCK_CHECKS: dict[str, Callable[[_Errors, str, dict[str, Any]], None]] = {
    "section": _section,
    "header": _header,
    "actions": _actions,
    "context": _context,
    "image": _image,
    "input": _input,
}


def _element(errors: _Errors, here: str, element: object) -> None:
    """An interactive element: buttons in detail, the rest by their common fields."""
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        errors.add(here, "missing required field: type")
        return
    errors.max_len(f"{here}/action_id", element.get("action_id"), ACTION_ID_MAX)
    if element.get("confirm") is not None:
        _confirm(errors, f"{here}/confirm", element["confirm"])
    errors.text(f"{here}/placeholder", element.get("placeholder"), PLACEHOLDER_MAX, required=False)
    if element["type"] == "button":
        errors.text(f"{here}/text", element.get("text"), BUTTON_TEXT_MAX, plain=True)
        errors.max_len(f"{here}/value", element.get("value"), BUTTON_VALUE_MAX)
        errors.max_len(f"{here}/url", element.get("url"), URL_MAX)
        if element.get("style") not in (None, "primary", "danger"):
            errors.add(f"{here}/style", "must be one of primary, danger")
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > OPTIONS_MAX:
            errors.add(f"{here}/options", f"no more than {OPTIONS_MAX} items allowed")
        for j, option in enumerate(options):
            if not isinstance(option, dict):
                errors.add(f"{here}/options/{j}", "must be an object")
                continue
            errors.text(f"{here}/options/{j}/text", option.get("text"), OPTION_TEXT_MAX)
            errors.max_len(f"{here}/options/{j}/value", option.get("value"), OPTION_VALUE_MAX)


def _confirm(errors: _Errors, here: str, confirm: object) -> None:
    if not isinstance(confirm, dict):
        errors.add(here, "must be an object")
        return
    errors.text(f"{here}/title", confirm.get("title"), CONFIRM_TITLE_MAX, plain=True)
    errors.text(f"{here}/text", confirm.get("text"), CONFIRM_TEXT_MAX)
    errors.text(f"{here}/confirm", confirm.get("confirm"), CONFIRM_BUTTON_MAX, plain=True)
    errors.text(f"{here}/deny", confirm.get("deny"), CONFIRM_BUTTON_MAX, plain=True)


def modal_errors(view: object) -> list[str]:
    """Slack's complaints about a modal view payload; ``[]`` when it is acceptable."""
    errors = _Errors()
    if not isinstance(view, dict):
        errors.add("/view", "must be an object")
        return errors.messages
    if view.get("type") != "modal":
        errors.add("/view/type", "must be modal")
    errors.text("/view/title", view.get("title"), MODAL_TITLE_MAX, plain=True)
    errors.text("/view/submit", view.get("submit"), MODAL_TITLE_MAX, plain=True, required=False)
    errors.text("/view/close", view.get("close"), MODAL_TITLE_MAX, plain=True, required=False)
    errors.max_len("/view/callback_id", view.get("callback_id"), CALLBACK_ID_MAX)
    errors.max_len("/view/private_metadata", view.get("private_metadata"), PRIVATE_METADATA_MAX)
    errors.max_len("/view/external_id", view.get("external_id"), EXTERNAL_ID_MAX)
    blocks = view.get("blocks")
    if blocks is None:
        errors.add("/view/blocks", "missing required field")
        return errors.messages
    errors.messages.extend(
        block_errors(blocks, max_blocks=MODAL_MAX_BLOCKS, pointer="/view/blocks")
    )
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if has_input and view.get("submit") is None:
        errors.add("/view/submit", "submit is required when an input block is present")
    return errors.messages


def find_element(
    blocks: list[dict[str, Any]], action_id: str, block_id: object = None
) -> tuple[str, dict[str, Any]] | None:
    """The ``(block_id, element)`` carrying ``action_id`` in ``blocks`` (in ``block_id`` only,
    when given): elements of actions blocks, accessories and input elements."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        candidates += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


def with_generated_ids(
    blocks: list[dict[str, Any]], new_id: Callable[[], str]
) -> list[dict[str, Any]]:
    """A copy of ``blocks`` where blocks and interactive elements lacking ids get one, as Slack
    assigns them when it stores a message or view."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        copy = {**block}
        copy.setdefault("block_id", new_id())
        if isinstance(copy.get("elements"), list) and copy["type"] == "actions":
            copy["elements"] = [_with_action_id(e, new_id) for e in copy["elements"]]
        for key in ("accessory", "element"):
            if isinstance(copy.get(key), dict):
                copy[key] = _with_action_id(copy[key], new_id)
        out.append(copy)
    return out


def _with_action_id(element: Any, new_id: Callable[[], str]) -> Any:
    if isinstance(element, dict) and element.get("type") != "image" and "action_id" not in element:
        return {**element, "action_id": new_id()}
    return element
