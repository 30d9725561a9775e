from __future__ import annotations

import copy
import json

import pytest

from healers.replication.events import (
    AcrImageEvent, EventParseError, IgnoredEvent, ValidationHandshake, cloudevents_handshake, parse_body,
    parse_event, parse_trigger_event,
)

DIGEST = "sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5"
RESOURCE = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/MyReg"

ACR_DATA = {
    "id": "31c51664-e5bd-416a-a5df-e5206bc47ed0",
    "timestamp": "2018-04-25T21:39:47.276585742Z",
    "action": "push",
    "location": "eastus",
    "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 3023,
               "digest": DIGEST, "length": 3023, "repository": "team/aci-helloworld", "tag": "v1"},
    "request": {"id": "7c66f28b-de19-40a4-821c-6f5f6c0003a4", "host": "myreg.azurecr.io", "method": "PUT",
                "useragent": "docker/18.03.0-ce"},
}

EVENTGRID = {"id": "831e1650-001e-001b-66ab-eeb76e069631", "topic": RESOURCE, "subject": "aci-helloworld:v1",
             "eventType": "Microsoft.ContainerRegistry.ImagePushed", "eventTime": "2018-04-25T21:39:47.6549614Z",
             "data": ACR_DATA, "dataVersion": "1.0", "metadataVersion": "1"}

CLOUDEVENT = {"id": "831e1650-001e-001b-66ab-eeb76e069631", "source": RESOURCE, "subject": "aci-helloworld:v1",
              "type": "Microsoft.ContainerRegistry.ImagePushed", "time": "2018-04-25T21:39:47.6549614Z",
              "data": ACR_DATA, "specversion": "1.0"}


def test_eventgrid_push_parsed():
    [ev] = parse_body(json.dumps([EVENTGRID]).encode())
    assert isinstance(ev, AcrImageEvent)
    assert ev.schema_name == "eventgrid" and ev.action == "push"
    assert (ev.registry, ev.repository, ev.tag, ev.digest) == ("myreg", "team/aci-helloworld", "v1", DIGEST)
    assert ev.location == "eastus" and ev.request_id == "7c66f28b-de19-40a4-821c-6f5f6c0003a4"
    assert ev.login_server == "myreg.azurecr.io"
    assert ev.media_type.endswith("manifest.v2+json")
    assert ev.event_time.year == 2018 and ev.event_time.utcoffset().total_seconds() == 0
    assert ev.wait_key == ("myreg", "team/aci-helloworld", DIGEST)


def test_cloudevent_push_parsed_same_as_eventgrid():
    ce = parse_event(CLOUDEVENT)
    eg = parse_event(EVENTGRID)
    assert ce.schema_name == "cloudevents"
    assert ce.model_dump(exclude={"schema_name"}) == eg.model_dump(exclude={"schema_name"})


def test_delete_without_tag_and_registry_from_host():
    ev = copy.deepcopy(EVENTGRID)
    ev["eventType"] = "Microsoft.ContainerRegistry.ImageDeleted"
    ev.pop("topic")
    ev["data"]["action"] = "delete"
    ev["data"]["target"].pop("tag")
    parsed = parse_event(ev)
    assert parsed.action == "delete" and parsed.tag is None and parsed.registry == "myreg"


def test_trigger_event_shape():
    parsed = parse_trigger_event(id="x1", event_type="Microsoft.ContainerRegistry.ImagePushed",
                                 subject="s", topic=RESOURCE, event_time="2024-01-01T00:00:00Z", data=ACR_DATA)
    assert isinstance(parsed, AcrImageEvent) and parsed.event_id == "x1"


def test_subscription_validation_handshake():
    body = [{"id": "2d1781af", "topic": "/subscriptions/x", "subject": "", "dataVersion": "2",
             "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2018-01-25T22:12:19Z",
             "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                      "validationUrl": "https://rp-eastus2.eventgrid.azure.net/api/vr?code=abc"}}]
    [hs] = parse_body(json.dumps(body))
    assert isinstance(hs, ValidationHandshake)
    assert hs.response_body() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_cloudevents_options_handshake():
    assert cloudevents_handshake({"WebHook-Request-Origin": "eventgrid.azure.net"}) == {
        "WebHook-Allowed-Origin": "eventgrid.azure.net", "WebHook-Allowed-Rate": "*"}
    assert cloudevents_handshake({}) is None
    assert cloudevents_handshake({"WebHook-Request-Origin": "evil.example"}, frozenset({"eventgrid.azure.net"})) is None


@pytest.mark.parametrize("event_type", ["Microsoft.ContainerRegistry.ChartPushed", "Microsoft.Storage.BlobCreated"])
def test_other_types_ignored(event_type):
    ev = dict(EVENTGRID, eventType=event_type)
    parsed = parse_event(ev)
    assert isinstance(parsed, IgnoredEvent) and parsed.event_type == event_type
    ce = parse_event(dict(CLOUDEVENT, type=event_type))
    assert isinstance(ce, IgnoredEvent)


def _with(path, value):
    ev = copy.deepcopy(EVENTGRID)
    node = ev
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    return ev


@pytest.mark.parametrize("event, message", [
    (_with(("data", "target", "digest"), "sha256:xyz"), "malformed digest"),
    (_with(("data", "target", "digest"), ...), "missing field 'digest'"),
    (_with(("data", "target", "repository"), "UPPER/case"), "malformed repository"),
    (_with(("data", "target", "tag"), "-bad"), "malformed tag"),
    (_with(("data", "target"), ...), "data.target"),
    (_with(("eventTime",), "yesterday"), "eventTime"),
    (_with(("data",), "text"), "'data' must be an object"),
    (_with(("id",), 42), "'id' must be a string"),
    (_with(("data", "target", "repository"), "a" * 300), "longer than"),
    ({"foo": 1}, "not an Event Grid event"),
    (dict(CLOUDEVENT, specversion="0.3"), "specversion"),
])
def test_bad_events_are_clear_errors(event, message):
    with pytest.raises(EventParseError, match=message):
        parse_event(event)


def test_unknown_registry_source_is_error():
    ev = _with(("topic",), None)
    ev["data"]["request"].pop("host")
    with pytest.raises(EventParseError, match="cannot tell the registry"):
        parse_event(ev)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not JSON"),
    (b"[]", "empty event batch"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" + b" " * (1024 * 1024) + b"]", "larger than"),
    (json.dumps([EVENTGRID, {"eventType": "x"}]).encode(), r"event\[1\]: missing field 'id'"),
])
def test_bad_bodies(body, message):
    with pytest.raises(EventParseError, match=message):
        parse_body(body)
