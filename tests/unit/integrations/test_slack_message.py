"""build_slack_message: Block Kit shapes, escaping and Slack's size limits; the wire types."""

from __future__ import annotations

import msgspec
import pytest

from integrations import SEVERITY_EMOJI, DeliveryResult, Notification, build_slack_message


def test_minimal_notification_has_header_and_context_only() -> None:
    note = Notification(key="k1", title="Heads up", text="", severity="info")
    assert build_slack_message(note) == {
        "text": ":information_source: [info] Heads up",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": ":information_source: Heads up",
                    "emoji": True,
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "key: `k1`"}]},
        ],
    }


def test_link_alone_makes_the_section() -> None:
    note = Notification(
        key="k", title="t", text="", severity="warning", link="https://x.example/a?b=1&c=|2>"
    )
    blocks = build_slack_message(note)["blocks"]
    assert blocks[1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "<https://x.example/a?b=1&amp;c=%7C2%3E|Open details>"},
    }


def test_mrkdwn_control_characters_are_escaped_everywhere() -> None:
    note = Notification(
        key="<k>",
        title="a < b",
        text="<!channel> & co",
        severity="warning",
        app="a&b",
        fields={"<x>": "1 > 0"},
    )
    message = build_slack_message(note)
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == ":warning: a < b"  # plain_text shows text as is
    assert blocks[1]["text"]["text"] == "&lt;!channel&gt; &amp; co"
    assert blocks[2]["fields"] == [{"type": "mrkdwn", "text": "*&lt;x&gt;*\n1 &gt; 0"}]
    assert [e["text"] for e in blocks[3]["elements"]] == ["app: *a&amp;b*", "key: `&lt;k&gt;`"]
    assert message["text"] == ":warning: [warning] a &lt; b: &lt;!channel&gt; &amp; co"


def test_fields_go_ten_per_section_and_at_most_forty() -> None:
    fields = {f"m{i:02}": str(i) for i in range(45)}
    note = Notification(key="k", title="t", text="x", severity="info", fields=fields)
    blocks = build_slack_message(note)["blocks"]
    sections = [b for b in blocks if b["type"] == "section" and "fields" in b]
    assert [len(s["fields"]) for s in sections] == [10, 10, 10, 10]
    assert sections[0]["fields"][0]["text"] == "*m00*\n0"
    assert sections[3]["fields"][-1]["text"] == "*m39*\n39"
    assert blocks[-1]["elements"][-1] == {"type": "mrkdwn", "text": "_5 more fields not shown_"}


def test_long_texts_are_clipped_to_slack_limits() -> None:
    note = Notification(
        key="k",
        title="T" * 500,
        text="x" * 5000,
        severity="critical",
        fields={"f": "v" * 3000},
        link="https://x.example/" + "p" * 100,
    )
    message = build_slack_message(note)
    header, section, fields, _ = message["blocks"]
    assert len(header["text"]["text"]) == 150
    assert header["text"]["text"].endswith("…")
    assert len(section["text"]["text"]) <= 3000
    assert section["text"]["text"].endswith("|Open details>")
    assert len(fields["fields"][0]["text"]) == 2000
    assert len(message["text"]) <= 3000


@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_each_severity_has_its_emoji(severity: str) -> None:
    note = msgspec.convert(
        {"key": "k", "title": "t", "text": "x", "severity": severity}, Notification
    )
    header = build_slack_message(note)["blocks"][0]["text"]["text"]
    assert header == f"{SEVERITY_EMOJI[severity]} t"  # type: ignore[index]
    assert len(set(SEVERITY_EMOJI.values())) == 3


def test_notification_round_trips_and_rejects_unknown_severity() -> None:
    note = Notification(
        key="k", title="t", text="x", severity="critical", app="a", fields={"n": "1"}, link="l"
    )
    assert msgspec.json.decode(msgspec.json.encode(note), type=Notification) == note
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"key":"k","title":"t","text":"x","severity":"fatal"}', type=Notification
        )
    result = DeliveryResult(ok=False, attempts=2, status=429, error="rate_limited")
    assert msgspec.json.decode(msgspec.json.encode(result), type=DeliveryResult) == result
