"""The per-app cache of parsed config messages behind ``ConfigService/GetConfig``."""

from __future__ import annotations

import json

from api.grpc.servicers.config import ConfigMessages, config_message


def _raw(version: int, model: str) -> bytes:
    return json.dumps(
        {"app": "shop", "version": version, "tasks": {"faq": {"model": model}}}
    ).encode()


def test_same_json_is_parsed_once_and_equals_a_fresh_parse() -> None:
    messages = ConfigMessages()
    raw = _raw(1, "big")
    first = messages.get("shop", raw)
    assert first == config_message(raw)
    assert messages.get("shop", raw) is first
    assert messages.get("shop", bytes(raw)) is first  # equal bytes, another object


def test_a_new_version_replaces_the_cached_message() -> None:
    messages = ConfigMessages()
    old = messages.get("shop", _raw(1, "big"))
    new = messages.get("shop", _raw(2, "small"))
    assert (old.version, old.tasks["faq"].model) == (1, "big")
    assert (new.version, new.tasks["faq"].model) == (2, "small")
    assert messages.get("shop", _raw(2, "small")) is new


def test_apps_are_kept_apart_and_the_table_is_bounded() -> None:
    messages = ConfigMessages(max_apps=2)
    a = messages.get("a", _raw(1, "x"))
    b = messages.get("b", _raw(1, "y"))
    assert messages.get("a", _raw(1, "x")) is a
    assert messages.get("b", _raw(1, "y")) is b
    messages.get("c", _raw(1, "z"))  # a third app: the table starts again
    assert messages.get("a", _raw(1, "x")) is not a
