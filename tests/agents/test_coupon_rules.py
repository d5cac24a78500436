"""Pure rule logic: config validation, quiet hours and live watch time, no I/O."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from shopstream.agents.coupons.rules import parse_config, quiet_release, view_end, view_event
from shopstream.core.errors import ConfigError

SH = ZoneInfo("Asia/Shanghai")


def ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=SH).timestamp() * 1000)


def test_defaults_when_sections_absent() -> None:
    cfg = parse_config({}, SH)
    assert [s.after_ms // 60_000 for s in cfg.steps] == [60, 1440, 4320]
    assert cfg.daily_cap == 2
    assert (cfg.quiet_start_min, cfg.quiet_end_min) == (22 * 60, 8 * 60)
    assert cfg.rules["cart_recovery"].cooldown_ms == 7 * 86_400_000


@pytest.mark.parametrize(("sections", "needle"), [
    ({"cart": {"steps": []}}, "cart.steps"),
    ({"cart": {"steps": [{"after_min": 60}, {"after_min": 30}]}}, "cart.steps[1].after_min"),
    ({"cart": {"steps": [{"after_min": "1h"}]}}, "cart.steps[0].after_min"),
    ({"coupons": {"daily_cap": 0}}, "coupons.daily_cap"),
    ({"coupons": {"quiet_hours": "22-08"}}, "coupons.quiet_hours"),
    ({"coupons": {"quiet_hours": "25:00-08:00"}}, "coupons.quiet_hours"),
    ({"coupons": {"new_user": {"budget": -1}}}, "coupons.new_user.budget"),
    ({"coupons": {"new_user": {"bugdet": 5}}}, "unknown keys ['bugdet']"),
    ({"coupons": {"threshold_nudge": {"threshold_fen": 100, "band_fen": 200}}}, "band_fen"),
    ({"coupons": {"live_followup": {"enabled": "yes"}}}, "live_followup.enabled"),
    ({"coupons": {"nonsense": 1}}, "unknown keys"),
])
def test_bad_config_names_the_key(sections: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=r"expected|unknown") as exc:
        parse_config(sections, SH)
    assert needle in str(exc.value)


def test_quiet_hours_defer_to_eight_local() -> None:
    cfg = parse_config({}, SH)
    assert quiet_release(ms(2026, 11, 11, 21, 59), cfg) is None
    assert quiet_release(ms(2026, 11, 11, 22, 0), cfg) == ms(2026, 11, 12, 8)
    assert quiet_release(ms(2026, 11, 12, 3, 0), cfg) == ms(2026, 11, 12, 8)
    assert quiet_release(ms(2026, 11, 12, 8, 0), cfg) is None
    day = parse_config({"coupons": {"quiet_hours": "12:00-13:30"}}, SH)
    assert quiet_release(ms(2026, 11, 12, 12, 15), day) == ms(2026, 11, 12, 13, 30)
    assert quiet_release(ms(2026, 11, 12, 23, 0), day) is None


def test_watch_time_follows_the_live_rooms_views() -> None:
    """Repeated join is activity (first join kept), idle views close at last activity + idle,
    the end closes the open view and hands over the session's total, then starts afresh."""
    idle, sec = 300_000, 1_000
    t0 = ms(2026, 11, 11, 9, 20) + 5 * sec
    st: dict = {}
    view_event(st, "r", "live_join", t0, idle)
    view_event(st, "r", "live_comment", t0 + 240 * sec, idle)
    view_event(st, "r", "live_join", t0 + 480 * sec, idle)         # activity, not a new view
    view_event(st, "r", "live_like", t0 + 720 * sec, idle)
    view_event(st, "r", "live_comment", t0 + 960 * sec, idle)
    view_event(st, "r", "live_leave", t0 + 1042 * sec, idle)       # 17 min 22 s
    view_event(st, "r", "live_join", t0 + 1100 * sec, idle)        # idle after 5 min
    view_event(st, "r", "live_like", t0 + 1500 * sec, idle)        # too late: no view open
    view_event(st, "r", "live_leave", t0 + 1600 * sec, idle)       # ignored, nothing open
    view_event(st, "r", "live_join", t0 + 1700 * sec, idle)
    assert view_end(st, "r", t0 + 1760 * sec, idle) == (1042 + 300 + 60) * sec
    assert st == {}
    view_event(st, "r", "live_join", t0 + 1800 * sec, idle)        # the next session
    assert view_end(st, "r", t0 + 4000 * sec, idle) == 300 * sec   # closed at its idle time
    assert view_end(st, "r", t0 + 5000 * sec, idle) == 0
