"""The series chart: a well-formed SVG with a point per finite value, flagged runs in
red, the baseline's band when there is one, and every label escaped."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from watcher.chart import Series, svg

NS = {"s": "http://www.w3.org/2000/svg"}


def parsed(series: Series) -> ET.Element:
    return ET.fromstring(svg(series))  # noqa: S314  # our own output


def test_a_point_per_value_and_the_flagged_ones_red() -> None:
    values = [1.5, 1.52, 1.48, 1.51, 2.1, 2.2]
    flags = [False, False, False, False, True, True]
    root = parsed(Series("Checkout onLoad", "s", values, flags, median=1.5, limit=1.65))
    colours = [c.get("fill") for c in root.findall("s:circle", NS)]
    assert colours == ["#2f9e5b"] * 4 + ["#d64545"] * 2
    heights = [float(c.get("cy", 0)) for c in root.findall("s:circle", NS)]
    assert heights[4] < heights[0]  # slower is higher
    band = [r for r in root.findall("s:rect", NS) if r.get("fill") == "#e8eef7"]
    assert len(band) == 1


def test_no_band_before_the_baseline_and_no_crash_without_values() -> None:
    root = parsed(Series("x", "s", [1.0, math.nan, 2.0], [False, False, False]))
    assert len(root.findall("s:circle", NS)) == 2
    assert [r for r in root.findall("s:rect", NS) if r.get("fill") == "#e8eef7"] == []
    empty = parsed(Series("nothing yet", "s", [], []))
    assert empty.findall("s:circle", NS) == []


def test_labels_are_escaped() -> None:
    text = svg(Series('<script>alert(1)</script> "x"', "s", [1.0], [False]))
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    ET.fromstring(text)  # noqa: S314  # still well-formed


def test_times_under_a_second_read_in_milliseconds() -> None:
    labels = [t.text for t in parsed(Series("t", "s", [0.2, 0.4], [False, False])).iter()]
    assert any(label and label.endswith(" ms") for label in labels)
