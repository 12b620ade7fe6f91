"""DESK-9 with the real PC/SC stack: pcscd, vsmartcard's virtual reader, vicc as the card.

The agent sees reader and card through pyscard; the desk's visits arrive as desk events on the
bus (published here as the desk service would); the device events are read back from JetStream.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from agent_harness import VIRTUAL_READER, make_config, of_type, running_agent, wait_for, write_policy_cache

from madoguchi_agent.policy import Policy
from madoguchi_shared import bus
from madoguchi_shared.events import new_id
from madoguchi_shared.events.desk import VisitEnded, VisitStarted, deskday_id

pytestmark = pytest.mark.pcsc

ATR_PATTERN = r"^(?:[0-9A-F]{2})+$"


def _visit_started(municipality: str, visit_id) -> VisitStarted:
    return VisitStarted(
        deskday_id=deskday_id("chuo-1", date.today()),
        ticket_no=12,
        staff_id="S0012",
        waited_seconds=30,
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        visit_id=visit_id,
    )


def _visit_ended(municipality: str, visit_id) -> VisitEnded:
    return VisitEnded(
        outcome="completed",
        service_seconds=600,
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        visit_id=visit_id,
    )


async def _until(condition, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_card_inserted_and_removed_arrive_in_jetstream(nats_server, nc, municipality, tmp_path, virtual_card):
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"card": True})
    async with running_agent(config):
        await wait_for(
            nc,
            municipality,
            lambda es: VIRTUAL_READER in {e.reader for e in of_type(es, "device.reader_attached")},
            what="reader attached",
        )
        virtual_card.insert()
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.card_inserted"), what="card inserted")
        virtual_card.remove()
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.card_removed"), what="card removed")

    inserted = of_type(events, "device.card_inserted")[0]
    removed = of_type(events, "device.card_removed")[0]
    assert inserted.reader == removed.reader == VIRTUAL_READER
    assert inserted.atr == removed.atr and len(inserted.atr) >= 4
    assert inserted.visit_id is None
    assert removed.dwell_s is not None and removed.dwell_s >= 0
    assert {"Virtual PCD 00 00", "Virtual PCD 00 01"} <= {e.reader for e in of_type(events, "device.reader_attached")}
    # the card events carry nothing but reader and ATR (SEC-3)
    payload = set(type(inserted).model_fields) - set(type(inserted).__mro__[2].model_fields)
    assert payload == {"device_id", "reader", "atr", "visit_id"}


async def test_card_left_in_reader_when_the_visit_ends(nats_server, nc, js, municipality, tmp_path, virtual_card):
    """A citizen's visit starts, the card goes in, the visit ends with the card still in: alert."""
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"card": True, "desk_visits": True})
    visit_id = new_id()
    async with running_agent(config) as agent:
        seq = (await bus.append(js, _visit_started(municipality, visit_id), expected=0)).seq
        await _until(lambda: agent.desk_state.current_visit == str(visit_id))
        virtual_card.insert()
        await wait_for(nc, municipality, lambda es: of_type(es, "device.card_inserted"), what="card inserted")
        await bus.append(js, _visit_ended(municipality, visit_id), expected=seq)
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.card_left_in_reader"), what="alert")
        virtual_card.remove()
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.card_removed"), what="card removed")

    inserted = of_type(events, "device.card_inserted")[0]
    alert = of_type(events, "device.card_left_in_reader")[0]
    assert inserted.visit_id == str(visit_id)
    assert alert.reason == "visit_ended" and alert.visit_id == str(visit_id)
    assert alert.reader == VIRTUAL_READER and alert.atr == inserted.atr
    assert alert.inserted_at == inserted.occurred_at
    assert "至急" in alert.describe_ja()
    assert len(of_type(events, "device.card_left_in_reader")) == 1  # one alert per insertion
    # the recorded sequence (shown with -s)
    print("\nDESK-9 sequence (visit ended):")
    for e in events:
        if e.type.startswith("device.card") or e.type == "device.reader_attached":
            extra = {
                k: getattr(e, k)
                for k in ("reader", "atr", "visit_id", "reason", "seconds_in_reader", "dwell_s")
                if hasattr(e, k)
            }
            print(f"  {e.occurred_at.isoformat()} {e.type} {extra}")


async def test_card_left_in_reader_with_no_visit(nats_server, nc, municipality, tmp_path, virtual_card):
    """No visit in progress and the card stays longer than the policy's limit: alert."""
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"card": True, "desk_visits": True})
    write_policy_cache(config, Policy(card_left_s=1.5))
    async with running_agent(config):
        virtual_card.insert()
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.card_left_in_reader"), what="alert")
        virtual_card.remove()
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.card_removed"), what="card removed")
    alert = of_type(events, "device.card_left_in_reader")[0]
    assert alert.reason == "no_visit" and alert.visit_id is None
    assert alert.seconds_in_reader >= 1.5
    types = [e.type for e in events if e.type.startswith("device.card")]
    assert types == ["device.card_inserted", "device.card_left_in_reader", "device.card_removed"]


def test_the_reader_list_survives_pcscd_going_away():
    """pyscard's ReaderMonitor thread ends for good at the first failure to reach pcscd (a pcscd
    restart), after which readers are never reported again; the agent's poller goes on and reports
    the readers once pcscd answers. (Here the list function fails as pyscard's does while pcscd is
    down; stopping the machine's pcscd would disturb the other tests.)"""
    import threading

    from smartcard.pcsc.PCSCExceptions import EstablishContextException

    from madoguchi_agent.cardreader import _ReaderPoller

    answers = iter(
        [
            [],
            EstablishContextException(0x8010001D),
            EstablishContextException(0x8010001D),
            ["Virtual PCD 00 00"],
            ["Virtual PCD 00 00"],
        ]
    )
    changes, done = [], threading.Event()

    def list_readers():
        answer = next(answers, None)
        if answer is None:
            done.set()
            return ["Virtual PCD 00 00"]
        if isinstance(answer, Exception):
            raise answer
        return answer

    poller = _ReaderPoller(0.01, changes.append, list_readers)
    poller.start()
    assert done.wait(5)
    poller.stop()
    poller.join(5)
    assert [(c.kind, c.reader) for c in changes] == [("reader_attached", "Virtual PCD 00 00")]
