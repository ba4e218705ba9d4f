"""Slack's Block Kit limits for messages, checked the way Slack checks them.

tests/utils/fake_slack.py refuses a message that breaks one with `invalid_blocks`, so a
builder that would be refused in production is refused in tests too.
(https://api.slack.com/reference/block-kit/blocks)
"""

from __future__ import annotations

from typing import Any

MESSAGE_METHODS = frozenset(
    {"chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"}
)
MAX_BLOCKS = 50
MAX_ID = 255  # block_id, action_id
LIMITS = {"section": 3000, "header": 150, "field": 2000, "button": 75, "context": 3000}
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS = 25


def block_errors(blocks: Any) -> list[str]:
    """Why Slack would refuse these blocks (empty when it would take them)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > MAX_ID:
                errors.append(_too_long(MAX_ID, f"{where}/block_id"))
            if block_id in seen:
                errors.append(f"duplicate block_id {block_id!r} [json-pointer:{where}/block_id]")
            seen.add(str(block_id))
        errors += _block_errors(block, where)
    return errors


def _block_errors(block: dict[str, Any], where: str) -> list[str]:
    kind = block.get("type")
    errors: list[str] = []
    if kind == "section":
        fields = block.get("fields") or []
        if "text" not in block and not fields:
            errors.append(f"must provide text or fields [json-pointer:{where}]")
        errors += _text_errors(block.get("text"), LIMITS["section"], f"{where}/text")
        if len(fields) > MAX_FIELDS:
            errors.append(_too_many(MAX_FIELDS, f"{where}/fields"))
        for j, field in enumerate(fields):
            errors += _text_errors(field, LIMITS["field"], f"{where}/fields/{j}")
        if isinstance(block.get("accessory"), dict):
            errors += _element_errors(block["accessory"], f"{where}/accessory")
    elif kind == "header":
        errors += _text_errors(block.get("text"), LIMITS["header"], f"{where}/text")
    elif kind == "context":
        elements = block.get("elements") or []
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            errors.append(_too_many(MAX_CONTEXT_ELEMENTS, f"{where}/elements"))
        for j, element in enumerate(elements):
            errors += _text_errors(element, LIMITS["context"], f"{where}/elements/{j}")
    elif kind == "actions":
        elements = block.get("elements") or []
        if len(elements) > MAX_ACTIONS:
            errors.append(_too_many(MAX_ACTIONS, f"{where}/elements"))
        for j, element in enumerate(elements):
            errors += _element_errors(element, f"{where}/elements/{j}")
    return errors


def _element_errors(element: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None and len(str(action_id)) > MAX_ID:
        errors.append(_too_long(MAX_ID, f"{where}/action_id"))
    if element.get("type") == "button":
        errors += _text_errors(element.get("text"), LIMITS["button"], f"{where}/text")
        if len(str(element.get("value") or "")) > 2000:
            errors.append(_too_long(2000, f"{where}/value"))
        if len(str(element.get("url") or "")) > 3000:
            errors.append(_too_long(3000, f"{where}/url"))
    return errors


def _text_errors(obj: Any, limit: int, where: str) -> list[str]:
    if obj is None:
        return []
    text = obj.get("text") if isinstance(obj, dict) else None
    if not isinstance(text, str) or not text:
        return [f"must be a non-empty text object [json-pointer:{where}]"]
    return [_too_long(limit, f"{where}/text")] if len(text) > limit else []


def _too_long(limit: int, where: str) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{where}]"


def _too_many(limit: int, where: str) -> str:
    return f"no more than {limit} items allowed [json-pointer:{where}]"


def invalid_blocks(errors: list[str]) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid_blocks",
        "errors": errors,
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }
