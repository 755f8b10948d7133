"""The SVG builder and the timeline rules as pure functions: scales, ticks, empty data, a single
point, escaping of every label, spans from the event log."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.domain import timeline
from web import charts
from web.charts import Lane, Series, Words

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
HOSTILE = '<script>alert(1)</script><b>"&\''
WORDS = Words(title='T <i>"', desc="D & d", empty="nothing <here>", span="connected", mark="talking", unit="ms")
NS = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # well-formed XML, or this raises


def test_scale_maps_linearly_clamps_and_centres_a_degenerate_domain() -> None:
    assert charts.scale(5, 0, 10, 0, 100) == 50
    assert charts.scale(0, 0, 10, 100, 0) == 100
    assert charts.scale(20, 0, 10, 0, 100) == 100
    assert charts.scale(-3, 0, 10, 0, 100) == 0
    assert charts.scale(7, 7, 7, 0, 100) == 50


def test_nice_max_rounds_up_to_round_numbers() -> None:
    assert charts.nice_max(0) == 1.0
    assert charts.nice_max(0.7) == 1.0
    assert charts.nice_max(3.2) == 5.0
    assert charts.nice_max(21) == 25.0
    assert charts.nice_max(100) == 100.0
    assert charts.nice_max(float("nan")) == 1.0


def test_numbers_are_short() -> None:
    values = (0, 2.0, 0.25, 12.5, 1250, 0.333333)
    assert [charts.number(v) for v in values] == ["0", "2", "0.25", "12.5", "1250", "0.33"]


def test_time_ticks_are_round_and_in_the_viewers_zone() -> None:
    ticks = charts.time_ticks(T0 + timedelta(seconds=7), T0 + timedelta(minutes=10), "Europe/Minsk")
    assert [label for _, label in ticks] == ["13:05", "13:10"]
    short = charts.time_ticks(T0, T0 + timedelta(seconds=40), "UTC")
    assert [label for _, label in short][:2] == ["10:00:00", "10:00:10"]
    day = charts.time_ticks(T0 - timedelta(hours=24), T0, "Asia/Kolkata")  # a half-hour offset
    assert all(label.endswith(":00") or label.endswith(":30") for _, label in day)
    assert charts.time_ticks(T0, T0, "UTC") == [(T0, "10:00:00")]


def test_empty_data_says_so_in_words() -> None:
    for svg in (charts.timeline_svg("t", [], T0, T0, "UTC", WORDS),
                charts.line_chart_svg("l", [Series("1", "a", [])], T0, T0, "UTC", WORDS)):
        root = parse(svg)
        assert root.get("role") == "img"
        assert root.find(f"{NS}title").text == 'T <i>"'
        assert "nothing <here>" in "".join(root.itertext())
        assert "<here>" not in str(svg)


def test_one_point_draws_a_marker_and_no_line() -> None:
    svg = charts.line_chart_svg("l", [Series("7", "Ann", [(T0, 3.0)])], T0, T0, "UTC", WORDS)
    root = parse(svg)
    group = root.find(f".//{NS}g[@data-series='7']")
    assert group is not None and group.get("data-points") == "1"
    assert group.find(f"{NS}circle") is not None and group.find(f"{NS}polyline") is None


def test_series_lines_stay_inside_the_picture() -> None:
    points = [(T0 + timedelta(seconds=5 * i), float(i % 7)) for i in range(100)]
    svg = charts.line_chart_svg("l", [Series("1", "a", points), Series("2", "b", points[:3])],
                                T0, T0 + timedelta(seconds=495), "UTC", WORDS)
    root = parse(svg)
    line = root.find(f".//{NS}g[@data-series='1']/{NS}polyline")
    coords = [tuple(map(float, pair.split(","))) for pair in line.get("points").split()]
    assert len(coords) == 100
    assert all(charts.LEFT <= x <= charts.WIDTH - charts.RIGHT for x, _ in coords)
    assert root.find(f".//{NS}g[@data-series='1']/{NS}circle") is None  # too many for markers
    assert len(root.findall(f".//{NS}g[@data-series='2']/{NS}circle")) == 3


def test_every_label_is_escaped() -> None:
    lane = Lane(HOSTILE, HOSTILE, [(T0, T0 + timedelta(minutes=1))], [(T0, T0 + timedelta(seconds=5))])
    words = Words(title=HOSTILE, desc=HOSTILE, empty=HOSTILE, span=HOSTILE, mark=HOSTILE, unit=HOSTILE)
    for svg in (charts.timeline_svg(HOSTILE, [lane], T0, T0 + timedelta(minutes=2), "UTC", words),
                charts.line_chart_svg(HOSTILE, [Series(HOSTILE, HOSTILE, [(T0, 1.0)])], T0, T0, "UTC", words)):
        text = str(svg)
        assert "<script>" not in text and "<b>" not in text and '"&\'' not in text
        root = parse(svg)
        assert HOSTILE in "".join(root.itertext())


def test_timeline_has_a_lane_per_participant_with_its_spans() -> None:
    lanes = [Lane("1", "Ann", [(T0, T0 + timedelta(minutes=1)), (T0 + timedelta(minutes=2), T0 + timedelta(minutes=3))],
                  [(T0 + timedelta(seconds=10), T0 + timedelta(seconds=20))]),
             Lane("2", "x" * 200, [(T0, T0 + timedelta(minutes=3))])]
    root = parse(charts.timeline_svg("t", lanes, T0, T0 + timedelta(minutes=3), "UTC", WORDS))
    first = root.find(f".//{NS}g[@data-lane='1']")
    assert len(first.findall(f"{NS}rect[@class='span']")) == 2 and len(first.findall(f"{NS}rect[@class='mark']")) == 1
    label = root.find(f".//{NS}g[@data-lane='2']/{NS}text").text
    assert len(label) == charts.LABEL_CHARS and label.endswith("…")


@dataclass
class P:
    id: int
    joined_at: datetime | None = None
    left_at: datetime | None = None


def test_connected_spans_pair_joins_with_leaves_and_fall_back_to_the_row() -> None:
    end = T0 + timedelta(minutes=30)
    events = [
        {"at": T0, "kind": "participant.joined", "participant_id": 1},
        {"at": T0 + timedelta(minutes=5), "kind": "participant.left", "participant_id": 1},
        {"at": T0 + timedelta(minutes=8), "kind": "participant.joined", "participant_id": 1},
        {"at": T0 + timedelta(minutes=1), "kind": "conference.extended", "participant_id": None},
    ]
    spans = timeline.connected_spans(events, [P(1), P(2, T0, T0 + timedelta(minutes=2)), P(3)], end)
    assert spans[1] == [(T0, T0 + timedelta(minutes=5)), (T0 + timedelta(minutes=8), end)]
    assert spans[2] == [(T0, T0 + timedelta(minutes=2))]
    assert 3 not in spans


def test_talk_spans_and_series() -> None:
    end = T0 + timedelta(minutes=1)
    spans = timeline.talk_spans([{"participant_id": 4, "started_at": T0, "ended_at": None}], end)
    assert spans == {4: [(T0, end)]}
    samples = [{"participant_id": 4, "at": T0 + timedelta(seconds=5), "jitter_ms": 2.0},
               {"participant_id": 4, "at": T0, "jitter_ms": 1.0},
               {"participant_id": 5, "at": T0, "jitter_ms": None}]
    assert timeline.series_by_participant(samples, "jitter_ms") == {4: [(T0, 1.0), (T0 + timedelta(seconds=5), 2.0)]}
