"""JSON-action fallback for models without function calling: rendering and strict parsing."""

from __future__ import annotations

from slidescout.agents.models.json_actions import (
    parse_json_action,
    render_tools_as_text,
    to_text_only,
    without_images,
)
from slidescout.core.messages import (
    AssistantMessage,
    ModelRequest,
    SystemMessage,
    TextPart,
    ToolCallPart,
    ToolMessage,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)
from slidescout.testing.fake_common import jpeg_image_part

ZOOM = ToolSpec(
    name="slide_zoom",
    description="Zoom into a box of the slide.",
    parameters={
        "type": "object",
        "required": ["x0", "y0"],
        "properties": {
            "x0": {"type": "integer", "minimum": 0, "description": "left"},
            "y0": {"type": "integer", "minimum": 0},
            "mode": {"type": "string", "enum": ["fast", "best"]},
        },
    },
)


def test_render_tools_as_text():
    text = render_tools_as_text([ZOOM])
    assert "slide_zoom: Zoom into a box" in text
    assert "x0 (integer; required, minimum 0): left" in text
    assert 'one of "fast", "best"' in text


def test_valid_action():
    msg = parse_json_action('{"tool": "slide_zoom", "arguments": {"x0": 1, "y0": 2}}')
    (call,) = msg.tool_calls
    assert (
        call.name == "slide_zoom"
        and call.arguments == {"x0": 1, "y0": 2}
        and call.parse_error is None
    )
    assert call.id


def test_fenced_action_and_thought():
    msg = parse_json_action(
        '```json\n{"thought": "look left", "tool": "slide_zoom", "arguments": {"x0": 0}}\n```'
    )
    assert msg.tool_calls[0].arguments == {"x0": 0}
    assert msg.text == "look left"


def test_plain_text_and_answer_objects_are_answers():
    assert (
        parse_json_action("The diagnosis is adenocarcinoma.").text
        == "The diagnosis is adenocarcinoma."
    )
    msg = parse_json_action('{"answer": 3}')
    assert not msg.tool_calls and msg.text == '{"answer": 3}'
    panda = '{"primary_pattern": 3, "secondary_pattern": 4, "total_score": 7, "isup_grade": 3}'
    assert parse_json_action(panda).text == panda
    assert parse_json_action("   ").parts == []


def test_garbage_becomes_parse_error_never_exception():
    cases = [
        '{"tool": "slide_zoom", "arguments": {"x0": 1,}}',  # bad JSON
        'I will zoom now: {"tool": "slide_zoom", "arguments": {"x0": 1}}',  # prose around it
        '{"tool": "slide_zoom", "arguments": {}}\n{"tool": "slide_zoom", "arguments": {}}',  # two
        '{"tool": "slide_zoom", "arguments": [1, 2]}',  # non-object arguments
        '{"tool": "slide_zoom", "args": {"x0": 1}}',  # unexpected key
        '{"tool": 5}',
    ]
    for text in cases:
        msg = parse_json_action(text)
        (call,) = msg.tool_calls
        assert call.parse_error, text
        assert call.raw_arguments is not None
    assert parse_json_action(cases[0]).tool_calls[0].name == "slide_zoom"


def test_to_text_only_rewrites_history():
    img = jpeg_image_part()
    req = ModelRequest(
        messages=[
            SystemMessage(content="You are a pathologist."),
            UserMessage(parts=[TextPart(text="q"), img]),
            AssistantMessage(
                parts=[ToolCallPart(id="c1", name="slide_zoom", arguments={"x0": 1, "y0": 2})]
            ),
            ToolMessage(
                results=[
                    ToolResultPart(
                        tool_call_id="c1",
                        name="slide_zoom",
                        content=[TextPart(text="region shown"), img],
                    )
                ]
            ),
        ],
        tools=[ZOOM],
        tool_choice="required",
    )
    out = to_text_only(req)
    assert out.tools == []
    sys = out.messages[0]
    assert (
        isinstance(sys, SystemMessage)
        and "slide_zoom" in sys.content
        and "exactly one JSON object" in sys.content
    )
    assert "must call a tool" in sys.content
    assert out.messages[2].text == '{"tool": "slide_zoom", "arguments": {"x0": 1, "y0": 2}}'
    last = out.messages[3]
    assert isinstance(last, UserMessage)
    assert last.parts[0].text.startswith("Result of slide_zoom:") and last.parts[1].kind == "image"
    stripped = without_images(out)
    assert all(p.kind == "text" for p in stripped.messages[1].parts)
