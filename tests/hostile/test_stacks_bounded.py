"""Stack parsing on hostile and cut-short input: bounded, and frames survive a `details` JSON cut by the query."""
from __future__ import annotations

import json

from healers.errors import stacks
from healers.errors.kql import SAMPLE_CHARS
from tests.errors import synth


def test_parsed_stack_cut_by_the_query_keeps_its_complete_frames():
    items = [{"method": f"Shop.Api.Orders.Step{i}.Run", "assembly": "Shop.Api, Version=1.0.0.0", "level": i,
              "fileName": f"/home/site/wwwroot/src/Orders/Step{i}.cs", "line": 10 + i} for i in range(120)]
    details = json.dumps([{"id": "1", "outerId": "0", "type": "X", "message": "m", "parsedStack": items}])
    assert len(details) > SAMPLE_CHARS
    frames, text = stacks.parse_details(details[:SAMPLE_CHARS])
    assert len(frames) >= 40 and frames[0].function == "Shop.Api.Orders.Step0.Run" and frames[0].in_app
    assert "Step0.Run" in text


def test_raw_stack_cut_by_the_query_keeps_the_frames_before_the_cut():
    raw = synth.dotnet_stack(88, "abc") + "\n" + "\n".join(f"   at Shop.Api.Pad{i}.Go() in /src/Pad{i}.cs:line {i}"
                                                           for i in range(300))
    details = json.dumps([{"message": "m", "rawStack": raw}])
    frames, text = stacks.parse_details(details[:SAMPLE_CHARS])
    assert frames and frames[0].function == stacks.parse_text(raw)[0].function
    assert text and '\\"' not in text


def test_hostile_details_are_not_an_exception():
    for details in ("[" * 5000 + "]" * 5000, '[{"rawStack": "' + "\\" * 9000, '{"parsedStack": [' + "{" * 3000,
                    '[{"parsedStack": 5}]', "[" + "1e999," * 100 + "1]"):
        frames, _ = stacks.parse_details(details)
        assert isinstance(frames, list)


def test_overlong_lines_are_not_frames():
    line = "   at Shop.Api.Orders.OrderService.PlaceAsync() in /src/Orders/OrderService.cs:line 88"
    assert stacks.parse_text(line) and not stacks.parse_text(line + " " * stacks.MAX_LINE_CHARS)
