"""The pictures of the portal as SVG markup for the templates: the history detail's timeline,
the network report's jitter and loss charts and the operator dashboard's 24-hour load chart,
labelled in the viewer's language and time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from markupsafe import Markup

from engine.domain.accounts import Account
from engine.domain.model import Participant
from engine.services.pictures import PicturesService
from web.charts import Lane, Series, Words, line_chart_svg, timeline_svg
from web.i18n import translate, translations

LOAD_HOURS = 24


def participant_label(participant: Participant) -> str:
    return f"{participant.name} ({participant.number})" if participant.name else participant.number


async def timeline_picture(request: web.Request, pictures: PicturesService, account: Account,
                           conference_id: int) -> Markup:
    """One lane per participant who was ever connected: connected spans with talking inside."""
    data = await pictures.timeline(account.id, conference_id)
    lanes = [Lane(str(p.id), participant_label(p), data.connected.get(p.id, ()), data.talking.get(p.id, ()))
             for p in data.conference.participants if p.id in data.connected or p.id in data.talking]
    words = Words(
        title=await translate(request, "Timeline: who was connected and who talked"),
        desc=await translate(request, "One lane per participant, %(count)s in all: light bars show when they "
                             "were connected, dark bars when they talked. The participants table lists the same "
                             "times.", count=len(lanes)),
        empty=await translate(request, "Nobody was connected."),
        span=await translate(request, "connected"), mark=await translate(request, "talking"))
    return timeline_svg("timeline", lanes, data.start, data.end, account.timezone, words)


async def network_pictures(request: web.Request, pictures: PicturesService, account: Account,
                           conference_id: int) -> tuple[Markup, Markup]:
    """Jitter (ms) and loss (%) over the conference, a line per participant."""
    data = await pictures.network(account.id, conference_id)
    names = {p.id: participant_label(p) for p in data.conference.participants}
    empty = await translate(request, "No network samples yet: they are taken while participants are connected.")
    charts = []
    for svg_id, values, title, unit in (("jitter", data.jitter, "Jitter over the conference", "ms"),
                                        ("loss", data.loss, "Packet loss over the conference", "%")):
        series = [Series(str(pid), names.get(pid, str(pid)), points) for pid, points in values.items()]
        unit_word = (await translations(request)).gettext(unit)
        peaks = [await translate(request, "%(name)s: up to %(value)s %(unit)s", name=s.label,
                                 value=f"{max(v for _, v in s.points):.1f}", unit=unit_word)
                 for s in series if s.points]
        words = Words(title=await translate(request, title),
                      desc=await translate(request, "A line per participant, sampled every %(seconds)s s. %(summary)s",
                                           seconds=pictures.settings.quality_sample_seconds,
                                           summary="; ".join(peaks)),
                      empty=empty, unit=unit_word)
        charts.append(line_chart_svg(svg_id, series, data.start, data.end, account.timezone, words))
    return charts[0], charts[1]


async def load_picture(request: web.Request, pictures: PicturesService, account: Account) -> Markup:
    """Running conferences, calls and connected participants over the last 24 hours."""
    samples = await pictures.load(LOAD_HOURS)
    now = datetime.now(UTC)
    series = [Series(key, await translate(request, label), [(s["at"], float(s[key])) for s in samples])
              for key, label in (("calls", "Calls"), ("participants", "Connected participants"),
                                 ("conferences", "Running conferences"))]
    peak = {s.key: max((v for _, v in s.points), default=0) for s in series}
    words = Words(
        title=await translate(request, "Load over the last 24 hours"),
        desc=await translate(request, "Calls, connected participants and running conferences, counted every "
                             "%(seconds)s s. Peaks: %(calls)s calls, %(participants)s participants, "
                             "%(conferences)s conferences.",
                             seconds=pictures.settings.load_sample_seconds,
                             calls=int(peak["calls"]), participants=int(peak["participants"]),
                             conferences=int(peak["conferences"])),
        empty=await translate(request, "No load samples yet."))
    return line_chart_svg("load", series, now - timedelta(hours=LOAD_HOURS), now, account.timezone, words)
