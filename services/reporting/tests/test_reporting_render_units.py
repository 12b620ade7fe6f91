"""Rendering rules that need no data: whole-number chart axes, durations in minutes."""

from __future__ import annotations

from matplotlib.figure import Figure

from madoguchi_reporting.layout import minutes
from madoguchi_reporting.render_pdf import _bar
from madoguchi_reporting.render_xlsx import integer_step, text_width


def test_chart_axes_count_in_whole_numbers():
    """Two people in an hour: the axis reads 0, 1, 2, never 0.25 (PDF) and the xlsx axis steps by whole numbers."""
    fig = Figure()
    ax = fig.add_subplot()
    _bar(ax, ["9時", "10時"], [1, 2], "時間帯別")
    assert all(float(t).is_integer() for t in ax.get_yticks())
    ax = fig.add_subplot()
    _bar(ax, ["女性", "男性"], [0, 1], "性別", horizontal=True)
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert [integer_step(n) for n in (1, 3, 7, 40, 130, 999)] == [1, 1, 2, 10, 50, 200]


def test_minutes_are_rounded_half_up_to_a_tenth():
    assert minutes(397.902) == 6.6 and minutes(3) == 0.1 and minutes(2.9) == 0.0 and minutes(600) == 10.0


def test_text_width_counts_japanese_as_two_cells():
    assert text_width("来庁者数") == 8 and text_width("PC") == 2 and text_width("9時台") == 5
