"""The operators' Q&A (電話対応Q&A): managed by the manager, versioned by events, searched while on
a call, rebuilt from the events at startup, seeded by `madoguchi calls faq-seed`."""

from __future__ import annotations

import asyncio

from calls_harness import jst, running_line

from madoguchi_calls.faq import SEED


async def test_faq_managed_by_the_manager_searched_by_operators_and_named_on_calls(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        created = await line.post(
            "/v1/faq",
            line.manager,
            {
                "question": "マイナポイントの申込み期限はいつですか？",
                "answer": "申込み期限はマイナポイントのホームページでご確認ください。",
                "categories": ["mynapoint.eligibility"],
                "keywords": ["期限", "締切"],
            },
            expect=201,
        )
        faq_id = created["faq_id"]
        hits = await line.get("/v1/faq", line.operator, q="締切")
        assert [h["faq_id"] for h in hits["results"]] == [faq_id]
        assert (await line.get("/v1/faq", line.operator, q="ﾏｲﾅﾎﾟｲﾝﾄ"))["results"][0][
            "faq_id"
        ] == faq_id  # half-width kana
        # revise with the revision seen; a stale editor gets 409
        revised = await line.client.put(
            f"/v1/faq/{faq_id}",
            headers=line.manager,
            json={
                "question": "マイナポイントの申込み期限は？",
                "answer": "期限はホームページのお知らせのとおりです。",
                "categories": ["mynapoint.eligibility"],
                "keywords": ["期限"],
                "expected_revision": 1,
            },
        )
        assert revised.status_code == 200 and revised.json()["revision"] == 2
        stale = await line.client.put(
            f"/v1/faq/{faq_id}",
            headers=line.manager,
            json={"question": "古い版", "answer": "古い版", "expected_revision": 1},
        )
        assert stale.status_code == 409
        old = await line.get(f"/v1/faq/{faq_id}", line.city, revision=1)
        assert old["question"] == "マイナポイントの申込み期限はいつですか？"
        # personal data is refused in the Q&A too
        r = await line.client.post(
            "/v1/faq", headers=line.manager, json={"question": "連絡先は？", "answer": "担当 090-1111-2222"}
        )
        assert r.status_code == 422
        # a call names the entry (and revision) it used
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/answer", line.operator, {"seat": "s1"})
        bad = await line.client.post(
            f"/v1/calls/{call_id}/close",
            headers=line.operator,
            json={
                "categories": ["mynapoint.eligibility"],
                "resolution": "answered_on_spot",
                "faq_used": [{"faq_id": faq_id, "revision": 3}],
            },
        )
        assert bad.status_code == 422 and bad.json()["field"] == "faq_used"
        await line.post(
            f"/v1/calls/{call_id}/close",
            line.operator,
            {
                "categories": ["mynapoint.eligibility"],
                "resolution": "answered_on_spot",
                "faq_used": [{"faq_id": faq_id, "revision": 2}],
            },
        )
        closed = (await line.events(aggregate="call", aggregate_id=call_id))[-1]
        assert [(str(r.faq_id), r.revision) for r in closed.faq_used] == [(faq_id, 2)]
        await line.post(f"/v1/faq/{faq_id}/retire", line.manager, {"reason": "outdated", "expected_revision": 2})
        assert (await line.get("/v1/faq", line.operator, q="期限"))["results"] == []
        types = [e.type for e in await line.events(aggregate="faq", aggregate_id=faq_id)]
        assert types == ["calls.faq_entry_created", "calls.faq_entry_revised", "calls.faq_entry_retired"]


async def test_faq_seed_command_then_index_rebuilt_at_startup(settings, municipality):
    """`madoguchi calls faq-seed` (the typer app the `madoguchi` CLI mounts as `calls`), run twice."""
    from importlib.metadata import entry_points

    from typer.testing import CliRunner

    from madoguchi_calls import cli

    assert {ep.name: ep.value for ep in entry_points(group="madoguchi.cli")}["calls"] == "madoguchi_calls.cli:app"
    env = {
        "MADOGUCHI_NATS_URL": settings.nats_url,
        "MADOGUCHI_PG_DSN": settings.pg_dsn,
        "MADOGUCHI_DATA_DIR": str(settings.data_dir),
    }
    outputs = []
    for _ in range(2):  # the second run finds everything there already
        # in a thread: the command runs its own event loop (asyncio.run), as it does from a shell
        result = await asyncio.to_thread(
            CliRunner().invoke, cli.app, ["faq-seed", "--municipality", municipality], env=env
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output.strip())
    assert outputs == [
        f"FAQ: {len(SEED)} entries created, 0 already present",
        f"FAQ: 0 entries created, {len(SEED)} already present",
    ]
    # a freshly started service rebuilds its index from the events
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        hits = await line.get("/v1/faq", line.operator, q="暗証番号")
        assert hits["results"][0]["categories"] == ["pin"]
        assert len((await line.get("/v1/faq", line.operator))["results"]) == len(SEED)
        tree = await line.get("/v1/categories", line.operator)
        assert [c["code"] for c in tree["categories"]][:3] == ["mykey_id", "mynapoint", "card"]
