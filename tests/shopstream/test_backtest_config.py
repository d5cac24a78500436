"""The settings file a backtest's workers read: written from settings, read back to the same
settings (tables, arrays of tables, odd strings), with the namespace's names and no webhook."""

from __future__ import annotations

from pathlib import Path

from shopstream.backtest_config import labels, namespace, sandboxed, settings_toml
from shopstream.core.settings import Settings, load_settings

SECTIONS = {
    "cart": {"steps": [{"after_min": 30}, {"after_min": 90, "coupon_fen": 1500}]},
    "coupons": {"daily_cap": 3, "quiet_hours": "23:00-07:00",
                "cart_recovery": {"budget": 10, "cooldown_days": 2}},
    "anomalies": {"threshold": 2.5, "min_drop": 1e-05},
    "funnels": [{"name": "buy \"now\" \u00e9", "steps": ["page_view", "order_submit"]}],
    "webhook": {"url": "https://push.example.com/hook", "secret": "0123456789abcdef01"},
    "ops_webhook": {"url": "https://ops.example.com/hook", "secret": "0123456789abcdef01"},
}


def test_a_written_file_reads_back_to_the_same_settings(tmp_path: Path) -> None:
    given = Settings(broker="kafka://h:9092", redis_url="redis://:p@h:6379/0", partitions=4,
                     batch_within_s=0.02, redis_cluster=True, sections=SECTIONS)
    path = tmp_path / "c.toml"
    path.write_text(settings_toml(given))
    assert load_settings(env={}, config_path=str(path)) == given


def test_the_workers_settings_have_the_namespace_and_no_webhook() -> None:
    given = Settings(app_id="shop", pushes_topic="pushes", max_future_ms=1000,
                     sections=SECTIONS)
    app = namespace("live", "a" * 64, "b" * 64)
    got = sandboxed(given, app, "kafka://h:1", "redis://h:2/0", "/tmp/x")
    assert app.startswith("bt-live-") and namespace("live", "a" * 64, "b" * 64, 2) == f"{app}-2"
    assert sorted(got.sections) == ["anomalies", "cart", "coupons", "funnels"]
    assert (got.app_id, got.pushes_topic, got.events_topic) == (app, f"{app}.pushes",
                                                                 f"{app}.events")
    assert got.max_future_ms == 0
    assert got.sections["coupons"] == given.sections["coupons"]


def test_labels_are_the_file_names_made_safe_and_distinct() -> None:
    assert labels(["a/live.toml", "b/live.toml", "x/to morrow!.toml"]) == [
        "live", "live-2", "to-morrow"]
