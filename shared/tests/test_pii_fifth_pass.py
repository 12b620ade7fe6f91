"""A fifth pass over the personal-data guard: spellings an independent tester sends that the fourth pass let through,
and a corpus of realistic harmless desk notes that must keep passing (its false-refusal rate is measured, and is 0).

Refused now (each passed before this pass):
* a full name without an honorific whose family name is on no list (鰐淵花子, 鰐淵 美咲): the given name must be a whole
  common given name that is no ordinary word (花子, 一郎, 美咲; not 健一, 真一, 大樹, 京子, which end 保健一課, 写真一枚,
  a tree, 東京子ども会), the family name two to four kanji that are no office, role or day word;
* a family name with an honorific and the given name in brackets (鈴木様（一郎）, はなこ様（鰐淵）, 花子（鰐淵）様), a common
  given name before a listed family name (一郎 鈴木), romaji joined by hyphens (yamada-taro-san, Wanibuchi-Hanako), a
  kana name run together ending in a common given name of three kana or more (ワニブチハナコ, わにぶちはなこ);
* masked numbers: the card's 4-4-4 shape or a phone number's shape with some digits masked by * x × ● ■ □ # ? ※
  and four digits or more shown (1234-****-9012, XXXX-XXXX-1234, 090-××××-5678); nothing shown passes;
* a 記号 that opens with a kanji or kana (保険証 記号東123 番号4567), and 記号 … 番号 … alone (the two numbers of a
  health-insurance card);
* Base64 of a text holding personal data (MTIzNDU2Nzg5MDEy is 123456789012; dGFyb0BleGFtcGxlLmpw taro@example.jp);
* an e-mail address with a comment (taro(desk)@example.jp) or with a sign between every letter (t-a-r-o-@-e-x-...);
* a mobile number with its 0 left out, after a phone label (携帯 九〇の一二三四の五六七八);
* a birth date in 大字 (昭和四拾五年三月弐日生まれ), with ・ between its parts (S45・3・2生まれ), a one-kanji era (生年月日
  昭45.3.2), the era in brackets after the Western year (1970年（昭和45年）3月2日生まれ); a letter-spaced postal code.
Passes again: 「在留カードの確認」 (カードの was read as a given name カー and 殿).

Still not refused, and why:
* six digits in each of two requests (「123456」, then 「789018」): the first request is stored (sealed, erasable) before
  the second arrives, so refusing the second cannot undo it, and keeping what a request said in memory to read it with
  the next would be a store of free text of its own (per worker, lost on restart). Six digits alone are a reference or
  an amount; a part said to be one (マイナンバーの前半は…) and two of the card's three groups are refused alone.
* a family name alone with an honorific (山田氏, 鰐淵様, Mr Yamada): it identifies nobody, and 担当の田中さん is written
  every day.
* a date of the 平成 or 令和 era alone (平成元年五月一日): a date of a procedure as often as a birth date; with a label
  (生年月日, 生まれ) it is refused.
* twelve digits with a letter between each (1a2b3c4d5e6f7g8h9i0j1k2l): read as an identifier, as hashes are.
* digits counted in the native words (ひとふたみよ…): no desk writes a number so.
"""

from __future__ import annotations

import pytest

from madoguchi_shared.pii import find_personal_data
from tests.utils.pii_spellings import FIFTH_PASS

# text -> the kind it is refused as
HOSTILE: dict[str, str] = {
    "鰐淵花子": "name",
    "鰐淵花子が来庁": "name",
    "相談者 鰐淵花子": "name",
    "勅使河原 美咲 より電話": "name",
    "小鳥遊翔太の件": "name",
    "鈴木様（一郎）": "name",
    "佐藤さん（太郎）から": "name",
    "はなこ様（鰐淵）": "name",
    "一郎 鈴木": "name",
    "yamada-taro-san": "name",
    "花子（鰐淵）様": "name",
    "ワニブチハナコ": "name",
    "わにぶちはなこが来庁": "name",
    "Wanibuchi-Hanako": "name",
    "1234-****-9012": "my_number",
    "XXXX-XXXX-1234": "my_number",
    "****-****-9012": "my_number",
    "1234-5678-XXXX": "my_number",
    "１２３４－＊＊＊＊－９０１２": "my_number",
    "1234 ●●●● 9012": "my_number",
    "090-××××-5678": "phone",
    "090-XXXX-5678": "phone",
    "03-****-5678": "phone",
    "記号123 番号4567": "my_number",
    "記号ア123 番号4567": "my_number",
    "保険証記号東123番号4567": "my_number",
    "被保険者証 記号：あ１２３ 番号：４５６７": "my_number",
    "MTIzNDU2Nzg5MDEy": "twelve_digits",
    "メモ: dGFyb0BleGFtcGxlLmpw": "email",
    "MDkwLTEyMzQtNTY3OA==": "phone",
    "taro(comment)@example.jp": "email",
    "taro@(comment)example.jp": "email",
    "t-a-r-o-@-e-x-a-m-p-l-e-.-j-p": "email",
    "t_a_r_o_@_e_x_a_m_p_l_e_._j_p": "email",
    "携帯 九〇の一二三四の五六七八": "phone",
    "電話 90-1234-5678": "phone",
    "昭和四拾五年三月弐日生まれ": "birth_date",
    "S45・3・2生まれ": "birth_date",
    "生年月日 昭45.3.2": "birth_date",
    "1970年（昭和45年）3月2日生まれ": "birth_date",
    "〒 1 0 0 - 0 0 0 1": "address",
    # the earlier passes' spellings an outsider tries first (each refused before this pass too)
    "①②③④ ⑤⑥⑦⑧ ⑨〇①②": "twelve_digits",
    "壱弐参肆伍陸漆捌玖壱弐参": "my_number",
    "ⅠⅡⅢⅣ ⅤⅥⅦⅧ ⅨⅠⅡⅢ": "my_number",
    "1\u200b2\u200b3\u200b4\u200b5\u200b6\u200b7\u200b8\u200b9\u200b0\u200b1\u200b2": "my_number",
    "1\u03012\u03013\u03014\u03015\u03016\u03017\u03018\u03019\u03010\u03011\u03012": "my_number",
    "︱２３４５６７８９０１２３": "twelve_digits",
    "taro@exаmple.jp": "email",  # (a Cyrillic а)
    "tαro@example.jp": "email",  # (a Greek α)
    '"taro yamada"@example.jp': "email",
    "taro%40example.jp": "email",
    "プラスはちいち きゅうぜろ いちにさんよん ごろくななはち": "phone",
    "03-1234-5678 内線123": "phone",
    "東京都千代田区千代田一丁目一番一号": "address",
    "桜丘二丁目三番四号に住んでいる": "address",
    "〒１００－０００１": "address",
    "昭和45年3月2日": "birth_date",
    "S45.3.2": "birth_date",
    "H元年5月1日生まれ": "birth_date",
    "ヤマダタロウ様": "name",
    "Taro Yamada san": "name",
    "山田 太郎 殿": "name",
    "わにぶち はなこ さん": "name",
    "Hanako Wanibuchi": "name",
}

# Realistic harmless notes of a My Number card desk: wards, procedures, counts, dates, the cards' words (記号, 番号,
# 保険証, 在留カード), masked templates with nothing shown, identifiers and words that look like Base64, and compounds
# that end as given names do (保健一課, 写真一枚, 大樹, 平和子ども会, 東京子ども食堂, 紹介, 補助, 組織, 知恵, 野菜).
HARMLESS = [
    "中央区役所 2階 市民課にて交付。受付番号 105 まで案内済",
    "北区・東区・西区の各窓口で混雑、待ち時間 40分",
    "暗証番号の再設定のため来庁、本人確認書類（運転免許証）で確認",
    "電子証明書の更新手続き、更新完了。所要 15分",
    "カード読取エラーのため再来庁を案内（令和8年12月10日以降）",
    "保険証の利用登録について説明、マイナポータルで手続き可能と案内",
    "お客様（3名）同伴で来庁、代理人申請の委任状あり",
    "田中様（受付済）は 2番窓口へ",
    "担当様（窓口）から連絡、区長様（代理）の確認待ち",
    "係長様（不在）のため、明日折り返しと案内",
    "写真撮影ブースが故障、証明写真一枚は持参を依頼",
    "申請書の記号欄と番号欄の記入漏れ 3件",
    "保健福祉課へ案内、健康保険証の切替は別窓口",
    "外国籍の方、在留カードの確認方法について質問（番号は記録せず）",
    "住所変更の届出と同時にカードの券面記載事項を変更",
    "転入届の受付、住民票の写しを発行、手数料 300円",
    "電話 12件、うち折り返し 4件。10:00-12:00 は窓口混雑",
    "出張申請受付、会場は北区民センター、来場 45名",
    "イベント会場（市民文化会館）で臨時窓口、14時まで",
    "平和子ども会のイベントと重なり、駐車場が満車",
    "東京子ども食堂からの問い合わせ、市の担当課を案内",
    "大樹の下のベンチで待機する方が多い",
    "保健一課の職員が応援に来庁",
    "証明写真一枚と申請書を受領",
    "暗証番号ロック解除、4桁と6桁の暗証番号を再設定",
    "署名用電子証明書は15歳未満のため発行なし",
    "マイナンバーカードの有効期限（10回目の誕生日）について説明",
    "子どもの申請で法定代理人が来庁、戸籍謄本で確認",
    "公金受取口座の登録方法を説明、口座番号は記録せず",
    "申請補助の依頼、紹介状を持参",
    "支援団体からの紹介で来庁、援助の内容を案内",
    "組織改編により窓口の場所が変更",
    "野菜の直売所の案内は観光課へ",
    "知恵袋を見て来た方、正しい手順を案内",
    "来庁予約システムの障害、10:15に復旧",
    "本日の来庁者数 120名、うち交付 80件",
    "明日から年末年始の特別開庁（12月28日・29日）",
    "読み取り機 2台のうち 1台が不調",
    "視覚障害のある方へ音声案内を使用",
    "ICチップの読み取り不可、再交付申請",
    "出張サポート、場所は中央図書館 2階会議室",
    "札幌市北区北24条西6丁目の北区役所へ案内",
    "〒060-8611 札幌市中央区北1条西2丁目 札幌市役所",
    "太郎丸地区の集会所で出張受付",
    "花子ちゃん人形の忘れ物、遺失物として届出",
    "健太くん向けの絵本コーナーを設置",
    "お名前は記録せず、受付番号で管理",
    "生年月日の記入漏れ、令和3年4月1日に再来庁",
    "平成生まれの方の申請が多い傾向",
    "整理券 No.105 〜 No.130 を配布",
    "被保険者証の切替時期について質問",
    "記号と番号の読み方を説明",
    "記号1 番号2 の欄に記入",
    "XXXX-XXXX-XXXX の形式で記入例を掲示",
    "090-XXXX-XXXX の欄は空欄のまま",
    "診察カードのみ持参",
    "base64 encoding error in the export, retried OK",
    "ExportJobFailed: TimeoutError after 30s, retried",
    "UUID 0192f0a4-7c3e-7d2a-9a51-3f0e5d6c7b8a のイベントを確認",
    "SHA256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 一致",
    "トークン eyJhbGciOiJIUzI1NiJ9 は期限切れ",
    "MadoguchiService の再起動で解消",
    "AbCdEfGhIjKlMnOp の設定値を確認",
    "Windows Update 後にドライバを再インストール",
    "受付 90-1234-5678 は別件（電話ではない整理番号）",
    "ありがとうございましたとのこと",
    "パンフレットとチラシをお渡し",
    "キャッシュレス決済の案内、ポイントの付与は後日",
    "いけばなこうざの会場はセンター3階",
    "おはなこうざ（子ども向け）の案内",
]


@pytest.mark.parametrize("text", sorted(HOSTILE))
def test_fifth_pass_spelling_is_refused_as_its_kind(text: str) -> None:
    kinds = {f.kind for f in find_personal_data(text)}
    assert HOSTILE[text] in kinds or (HOSTILE[text] == "my_number" and "twelve_digits" in kinds), (text, kinds)


def test_the_spellings_sent_through_every_api_field_are_refused() -> None:
    # (tests/utils/pii_spellings.py: the services' free-text-field tests send each through every field)
    for value, text in FIFTH_PASS.items():
        findings = find_personal_data(text)
        assert findings, text
        # the finding covers the value: what is refused is the personal data, not a word beside it
        start = text.index(value) if value in text else 0
        assert any(f.start < start + len(value) and start < f.end for f in findings), (text, findings)


def test_harmless_desk_notes_pass() -> None:
    refused = {text: [f.kind for f in find_personal_data(text)] for text in HARMLESS}
    wrong = {text: kinds for text, kinds in refused.items() if kinds}
    assert not wrong, f"{len(wrong)} of {len(HARMLESS)} harmless notes refused: {wrong}"


def test_a_masked_shape_with_nothing_shown_passes_and_a_mask_with_too_few_digits_passes() -> None:
    for text in ("XXXX-XXXX-XXXX", "****-****-****", "090-XXXX-XXXX", "12**-****-****", "0X0-XXXX-XXXX"):
        assert not find_personal_data(text), text


def test_base64_of_ordinary_text_passes() -> None:
    import base64

    for plain in ("受付番号 105 まで案内済", "window closed at 17:00", "カード読取エラー"):
        assert not find_personal_data(base64.b64encode(plain.encode()).decode()), plain
