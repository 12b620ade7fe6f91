"""The inquiry category tree (問い合わせ分類) the operators close calls with (CALL-2, CALL-5).

Codes are stable and go into events (``calls.call_closed.categories``); labels are Japanese and
live here and in the UI. The tree is configuration: a municipality may replace it with a JSON
file (``settings.extra["calls_categories_file"]``, same shape as ``DEFAULT_TREE``); a code may
be an inner node ("card") or a leaf ("card.issue"), both are valid on a call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from madoguchi_shared.events.calls import CategoryCode


@dataclass(frozen=True)
class Category:
    code: str
    label_ja: str
    children: tuple[Category, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "label_ja": self.label_ja, "children": [c.as_dict() for c in self.children]}


def _node(code: str, label: str, *children: Category) -> Category:
    return Category(code, label, children)


DEFAULT_TREE: tuple[Category, ...] = (
    _node(
        "mykey_id",
        "マイキーIDの設定",
        _node("mykey_id.setup", "設定の方法"),
        _node("mykey_id.trouble", "設定できない・エラー"),
    ),
    _node(
        "mynapoint",
        "マイナポイント",
        _node("mynapoint.application", "申込みの方法"),
        _node("mynapoint.eligibility", "対象者・期間"),
        _node("mynapoint.points", "ポイントの付与・確認"),
    ),
    _node(
        "card",
        "マイナンバーカード",
        _node("card.application", "カードの申請"),
        _node("card.issue", "カードの交付・受取"),
    ),
    _node("pin", "暗証番号（ロック・失念）"),
    _node("payment_services", "キャッシュレス決済サービス"),
    _node("desk_locations_hours", "支援窓口の場所・開設時間"),
    _node("health_insurance", "健康保険証利用の初回登録"),
    _node("complaint_card_system", "マイナンバーカード制度への苦情"),
    _node("other", "その他"),
)

_code = TypeAdapter(CategoryCode)


def tree_from_data(data: list[dict[str, Any]]) -> tuple[Category, ...]:
    """Build (and check) a tree from JSON-like data: [{code, label_ja, children: [...]}, ...]."""

    def build(item: dict[str, Any], parent: str | None) -> Category:
        code = _code.validate_python(item["code"])
        if parent and not code.startswith(parent + "."):
            raise ValueError(f"category {code} must start with its parent's code {parent}.")
        return Category(code, str(item["label_ja"]), tuple(build(c, code) for c in item.get("children", ())))

    tree = tuple(build(item, None) for item in data)
    codes = [c for c in _walk(tree)]
    if len(codes) != len(set(codes)):
        raise ValueError("category codes must be unique")
    return tree


def _walk(tree: tuple[Category, ...]):
    for node in tree:
        yield node.code
        yield from _walk(node.children)


def codes(tree: tuple[Category, ...]) -> frozenset[str]:
    """Every valid code: inner nodes and leaves."""
    return frozenset(_walk(tree))


def labels(tree: tuple[Category, ...]) -> dict[str, str]:
    out: dict[str, str] = {}

    def visit(nodes: tuple[Category, ...]) -> None:
        for n in nodes:
            out[n.code] = n.label_ja
            visit(n.children)

    visit(tree)
    return out


def load_tree(path: str | Path | None) -> tuple[Category, ...]:
    if not path:
        return DEFAULT_TREE
    return tree_from_data(json.loads(Path(path).read_text(encoding="utf-8")))
