"""The live follow-up on real Kafka + Redis, case by case (docs/cart-recovery.md, watch time as
docs/live-and-ops.md defines views): who is followed up, after which session, and what counts as
suppressed."""

from __future__ import annotations

import pytest

from shopstream.monitoring.metrics import Metrics
from tests.agents.coupon_support import MIN, Events, at, metric, run, with_sections

pytestmark = pytest.mark.integration

SECTIONS = {"coupons": {"new_user": {"enabled": False}, "threshold_nudge": {"enabled": False},
                        "live_followup": {"min_watch_min": 10, "within_min": 30,
                                          "cooldown_min": 0}}}


def watch(ev: Events, user: str, room: str, join: int, until: int, every: int = 4 * MIN) -> None:
    """Join, then a comment every ``every`` while ``< until`` (activity keeps the view open)."""
    ev.add("live_join", user, join, room_id=room)
    t = join + every
    while t < until:
        ev.add("live_comment", user, t, room_id=room)
        t += every


def session(ev: Events, room: str, start: int, end: int) -> None:
    ev.add("live_start", "host", start, room_id=room)
    ev.add("live_end", "host", end, room_id=room)


def clock(ev: Events, users: list[str], ts: int) -> None:
    """A later event of every user, so each one's partition passes every due follow-up."""
    for i, user in enumerate(users):
        ev.add("page_view", user, ts + i, page="home")


def followups(pushes: list[dict]) -> dict[str, list[tuple[str, int, int]]]:
    out: dict[str, list[tuple[str, int, int]]] = {}
    for p in pushes:
        assert p["rule"] == "live_followup"
        out.setdefault(p["user_id"], []).append((p["room"], p["trigger"], p["ts"]))
    return {u: sorted(v) for u, v in out.items()}


async def test_only_viewers_who_watched_long_enough_and_did_not_order_since(settings) -> None:
    s = with_sections(settings, **SECTIONS)
    ev = Events()
    end = at(11, 11)
    session(ev, "r1", at(11, 10), end)
    watch(ev, "long", "r1", at(11, 10, 30), end)              # 30 min: followed up
    watch(ev, "short", "r1", at(11, 10, 50), at(11, 10, 55))  # 5 min, then idle: no
    ev.add("live_leave", "short", at(11, 10, 55), room_id="r1")
    watch(ev, "bought", "r1", at(11, 10, 30), end)            # ordered 10 min after the end
    ev.order("bought", at(11, 11, 10))
    watch(ev, "at_end", "r1", at(11, 10, 30), end)            # ordered at the end itself
    ev.order("at_end", end)
    watch(ev, "earlier_buyer", "r1", at(11, 10, 30), end)     # ordered while watching: yes
    ev.order("earlier_buyer", at(11, 10, 45))
    watch(ev, "late_buyer", "r1", at(11, 10, 40), at(11, 10, 59))  # 19 min; order after due
    ev.add("live_leave", "late_buyer", at(11, 10, 59), room_id="r1")
    ev.order("late_buyer", at(11, 11, 45))
    ev.add("live_join", "passive", at(11, 10, 30), room_id="r1")   # idle after 5 min: no
    watch(ev, "other_room", "r2", at(11, 10), at(11, 11))
    users = ["long", "short", "bought", "at_end", "earlier_buyer", "late_buyer", "passive",
             "other_room", "host"]
    clock(ev, users, at(11, 12))
    m = Metrics()
    got = followups(await run(s, ev.items, metrics=m))
    due = end + 30 * MIN
    assert got == {u: [("r1", due, due)] for u in ("long", "earlier_buyer", "late_buyer")}
    assert metric(m, "live_followup", "suppressed") == 2  # bought, at_end


async def test_every_session_of_a_room_is_followed_up(settings) -> None:
    s = with_sections(settings, **SECTIONS)
    ev = Events()
    first, second, third = (at(11, 10), at(11, 10, 40)), (at(11, 11), at(11, 11, 40)), \
        (at(11, 13), at(11, 13, 30))
    for start, end in (first, second, third):
        session(ev, "r1", start, end)
    watch(ev, "both", "r1", first[0] + MIN, first[1])
    watch(ev, "both", "r1", second[0] + MIN, second[1])
    watch(ev, "second_only", "r1", second[0] + 5 * MIN, second[1] - 5 * MIN)
    ev.add("live_leave", "second_only", second[1] - 5 * MIN, room_id="r1")
    # Watched the first session only: nothing is due for the sessions they missed.
    watch(ev, "first_only", "r1", first[0] + MIN, first[1])
    clock(ev, ["both", "second_only", "first_only", "host"], at(11, 14, 30))
    got = followups(await run(s, ev.items))
    due1, due2 = first[1] + 30 * MIN, second[1] + 30 * MIN
    assert got == {"both": [("r1", due1, due1), ("r1", due2, due2)],
                   "second_only": [("r1", due2, due2)],
                   "first_only": [("r1", due1, due1)]}


async def test_a_repeated_join_keeps_the_first_join(settings) -> None:
    """u1054 of the report: joins 09:20:05, again 09:34:11, leaves 09:37:27 (active in
    between): 17 min 22 s watched, followed up; restarting at the second join would count
    3 min 16 s."""
    s = with_sections(settings, **SECTIONS)
    ev = Events()
    end = at(11, 9, 50)
    session(ev, "r1", at(11, 9), end)
    join = at(11, 9, 20) + 5_000
    watch(ev, "u1054", "r1", join, at(11, 9, 34))
    ev.add("live_join", "u1054", at(11, 9, 34) + 11_000, room_id="r1")
    ev.add("live_leave", "u1054", at(11, 9, 37) + 27_000, room_id="r1")
    # Idle from 09:20 to 09:34 (no activity): the rejoin opens a new view, 5 min + 3 min 16 s.
    ev.add("live_join", "idle", join, room_id="r1")
    ev.add("live_join", "idle", at(11, 9, 34) + 11_000, room_id="r1")
    ev.add("live_leave", "idle", at(11, 9, 37) + 27_000, room_id="r1")
    clock(ev, ["u1054", "idle", "host"], at(11, 10, 30))
    due = end + 30 * MIN
    assert followups(await run(s, ev.items)) == {"u1054": [("r1", due, due)]}
