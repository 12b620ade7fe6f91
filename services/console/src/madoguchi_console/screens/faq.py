"""The manager keeps the operators' FAQ (issue 16 item 8; CALL-2): add, revise and retire entries.

Data: /v1/faq of the calls service (add: POST, revise: PUT with the revision edited, retire:
POST …/retire). The personal-data guard of the calls service refuses a name, a phone number or a
My Number in any text; the refusal is shown next to the field with everything typed kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from madoguchi_shared.events.base import Role
from madoguchi_console.deps import Api, PhoneSession, ScreenForbidden, Session
from madoguchi_console.forms import FormValues, read_form
from madoguchi_console.screens.phone import _flat
from madoguchi_console.upstream import ApiError, Upstream
from madoguchi_console.views import render, set_flash

router = APIRouter(include_in_schema=False)
RETIRE_REASONS = {
    "outdated": "内容が古くなった",
    "duplicate": "重複している",
    "wrong": "内容に誤りがある",
    "other": "その他",
}
FAQ_FIELDS = {"question": "question", "answer": "answer", "keywords": "keywords", "categories": "categories"}


def _manager(session: Session) -> None:
    if Role.manager not in session.roles and Role.administrator not in session.roles:
        raise ScreenForbidden("phone")


async def _page(
    request: Request,
    api: Upstream,
    *,
    values: dict | None = None,
    errors: dict | None = None,
    form_error: str | None = None,
    status_code: int = 200,
    edit: str | None = None,
    q: str = "",
):
    entries = (await api.get("calls", "/v1/faq", {"q": q[:200], "limit": 100}))["results"]
    categories = _flat((await api.get("calls", "/v1/categories"))["categories"])
    editing = next((e for e in entries if e["faq_id"] == edit), None)
    if editing and values is None:
        values = {
            "question": editing["question"],
            "answer": editing["answer"],
            "categories": editing["categories"],
            "keywords": "、".join(editing["keywords"]),
            "faq_id": editing["faq_id"],
            "revision": str(editing["revision"]),
        }
    values = values or {}
    values.setdefault("categories", [])
    return render(
        request,
        "faq_manage.html",
        status_code,
        active="phone",
        values=values,
        errors=errors,
        form_error=form_error,
        entries=entries,
        categories=categories,
        editing=editing or values.get("faq_id"),
        category_labels={c: t for c, t, _ in categories},
        RETIRE_REASONS=RETIRE_REASONS,
        q=q,
    )


def _body(form: FormValues) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    question, answer = form.text("question"), form.text("answer")
    if not question:
        errors["question"] = "質問を入力してください。"
    if not answer:
        errors["answer"] = "回答を入力してください。"
    raw = (form.get("keywords") or "").replace("，", "、").replace(",", "、").replace("\n", "、")
    keywords = [k.strip() for part in raw.split("、") for k in part.split() if k.strip()]
    if any(len(k) > 40 for k in keywords):
        errors["keywords"] = "キーワードは1つ40文字までにしてください。"
    return {
        "question": question,
        "answer": answer,
        "categories": form.getlist("categories"),
        "keywords": keywords,
    }, errors


def _values(form: FormValues) -> dict[str, Any]:
    values: dict[str, Any] = dict(form)
    values["categories"] = form.getlist("categories")
    return values


@router.get("/phone/faq/manage")
async def manage(request: Request, session: PhoneSession, api: Api, edit: str | None = None, q: str = ""):
    """The FAQ entries with add, revise and retire."""
    _manager(session)
    return await _page(request, api, edit=edit, q=q)


@router.post("/phone/faq/manage")
async def save(request: Request, session: PhoneSession, api: Api):
    """Add an entry, or revise the one being edited."""
    _manager(session)
    form = await read_form(request)
    body, errors = _body(form)
    if errors:
        return await _page(
            request,
            api,
            values=_values(form),
            errors=errors,
            form_error="入力内容を確認してください。",
            status_code=422,
        )
    faq_id = form.get("faq_id")
    try:
        if faq_id:
            revision = form.integer("revision")
            await api.put("calls", f"/v1/faq/{faq_id}", {**body, "expected_revision": revision})
            message = "よくある質問を改訂しました。"
        else:
            await api.post("calls", "/v1/faq", body)
            message = "よくある質問を追加しました。"
    except ApiError as exc:
        if exc.status == 401:
            raise
        errors, form_error = exc.for_form(FAQ_FIELDS)
        return await _page(
            request,
            api,
            values=_values(form),
            errors=errors,
            form_error=form_error or "入力内容を確認してください。",
            status_code=exc.status,
        )
    response = RedirectResponse("/phone/faq/manage", status_code=303)
    set_flash(response, message)
    return response


@router.post("/phone/faq/manage/{faq_id}/retire")
async def retire(request: Request, faq_id: str, session: PhoneSession, api: Api):
    """Retire an entry: operators no longer find it (its old revisions stay readable)."""
    _manager(session)
    form = await read_form(request)
    reason = form.get("reason") if form.get("reason") in RETIRE_REASONS else "outdated"
    try:
        await api.post(
            "calls", f"/v1/faq/{faq_id}/retire", {"reason": reason, "expected_revision": form.integer("revision")}
        )
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, form_error=exc.detail, status_code=exc.status)
    response = RedirectResponse("/phone/faq/manage", status_code=303)
    set_flash(response, "よくある質問を廃止しました。")
    return response
