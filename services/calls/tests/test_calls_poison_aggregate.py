"""A message on a call's subject that is no event (written by hand with the administrator's
credentials, or by a broken client) must not make the call unusable: the command path reads past
it, as the projections dead-letter it, and the next command appends after it (no 409 loop)."""

from __future__ import annotations

import uuid

from calls_harness import jst, running_line

from madoguchi_shared import subjects


async def test_an_unreadable_message_on_a_call_subject_does_not_block_the_call(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        subject = subjects.aggregate_subject("calls", municipality, "call", call_id)
        for junk in (b"\xff\xfe not json", b'{"type": "calls.no_such_event"}', b"[]"):
            await line.service.js.publish(subject, junk, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        await line.post(f"/v1/calls/{call_id}/answer", line.operator, {"seat": "s1"})
        call = await line.get(f"/v1/calls/{call_id}", line.city)
        assert call["status"] == "answered"
        await line.post(
            f"/v1/calls/{call_id}/close", line.operator, {"categories": ["other"], "resolution": "answered_on_spot"}
        )
