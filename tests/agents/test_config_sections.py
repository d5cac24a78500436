"""The capability sections of the config file: defaults, values kept, and each bad value
refused with an error naming ``<section>.<key>``, what was expected and what was found."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shopstream.agents.anomalies.rules import AnomalyConfig
from shopstream.agents.anomalies.rules import parse_config as anomalies
from shopstream.agents.coupons.rules import CouponConfig, Rule, Step
from shopstream.agents.coupons.rules import parse_config as coupons
from shopstream.agents.flash_sale.agent import FlashSaleConfig
from shopstream.agents.flash_sale.agent import parse_config as flash_sales
from shopstream.agents.lateness import allowed_lateness
from shopstream.agents.live_section import LiveConfig
from shopstream.agents.live_section import parse_config as live
from shopstream.core.env import KAFKA_SASL_PASSWORD
from shopstream.core.errors import ConfigError
from shopstream.core.settings import Settings, _freeze
from shopstream.kafka_io.client_config import KafkaConfig, kafka_config
from shopstream.sinks.webhook import WebhookConfig, parse_webhook


def test_defaults_and_values() -> None:
    assert allowed_lateness({}) == 300_000
    assert allowed_lateness({"funnel_options": {"allowed_lateness_ms": 0}}) == 0
    assert live({}) == LiveConfig()
    assert live({"live": {"idle_ms": 1_000, "top_rooms": 200},
                 "funnel_options": {"allowed_lateness_ms": 7}}) == LiveConfig(
        idle_ms=1_000, top_rooms=200, lateness_ms=7)
    assert anomalies({}) == AnomalyConfig()
    got = anomalies({"anomalies": {"threshold": 2, "min_drop": 0.5, "window": 10,
                                   "min_history": 10}})
    assert (got.threshold, got.min_drop, got.window, got.min_history) == (2, 0.5, 10, 10)
    assert flash_sales({}) == FlashSaleConfig()
    assert flash_sales({"flash_sales": {"low_stock_pct": []}}).low_stock_pct == ()
    frozen = _freeze({"flash_sales": {"reservation_ttl_s": 60, "low_stock_pct": [5, 50, 5]}})
    assert flash_sales(frozen) == FlashSaleConfig(60, (50, 5))


ERRORS: list[tuple[Any, dict[str, Any], str]] = [
    (allowed_lateness, {"funnel_options": {"allowed_lateness_ms": -1}},
     "funnel_options.allowed_lateness_ms: expected an integer >= 0, got -1"),
    (allowed_lateness, {"funnel_options": {"allowed_lateness_ms": True}},
     "funnel_options.allowed_lateness_ms: expected an integer >= 0, got True"),
    (allowed_lateness, {"funnel_options": 3}, "funnel_options: expected a table, got 3"),
    (live, {"live": 3}, "live: expected a table, got 3"),
    (live, {"live": {"idle": 1, "zz": 2}},
     "live: unknown keys ['idle', 'zz'], expected "
     "['attribution_ms', 'idle_ms', 'on_air_silence_ms', 'top_rooms']"),
    (live, {"live": {"idle_ms": 999}}, "live.idle_ms: expected an integer 1000..86400000, got 999"),
    (live, {"live": {"top_rooms": "5"}}, "live.top_rooms: expected an integer 1..200, got '5'"),
    (live, {"live": {"attribution_ms": 1.0}},
     "live.attribution_ms: expected an integer 0..604800000, got 1.0"),
    (live, {"live": {"on_air_silence_ms": 0}},
     "live.on_air_silence_ms: expected an integer 60000..2592000000, got 0"),
    (live, {"funnel_options": {"allowed_lateness_ms": -5}},
     "funnel_options.allowed_lateness_ms: expected an integer >= 0, got -5"),
    (anomalies, {"anomalies": []}, "anomalies: expected a table, got []"),
    (anomalies, {"anomalies": {"windows": 5}},
     "anomalies: unknown keys ['windows'], expected "
     "['min_drop', 'min_history', 'min_volume', 'threshold', 'window']"),
    (anomalies, {"anomalies": {"threshold": 0.5}},
     "anomalies.threshold: expected a number 1.0..100.0, got 0.5"),
    (anomalies, {"anomalies": {"min_drop": True}},
     "anomalies.min_drop: expected a number 0.0..1.0, got True"),
    (anomalies, {"anomalies": {"window": 5.0}},
     "anomalies.window: expected an integer 5..1440, got 5.0"),
    (anomalies, {"anomalies": {"min_volume": 0}},
     "anomalies.min_volume: expected an integer 1..1000000000, got 0"),
    (anomalies, {"anomalies": {"min_history": 40, "window": 30}},
     "anomalies.min_history: expected <= anomalies.window"),
    (flash_sales, {"flash_sales": 3}, "flash_sales: expected a table, got 3"),
    (flash_sales, {"flash_sales": {"reservation_ttl_s": 0}},
     "flash_sales.reservation_ttl_s: expected an integer 1..604800, got 0"),
    (flash_sales, {"flash_sales": {"low_stock_pct": [0]}},
     "flash_sales.low_stock_pct: expected a list of integers 1..99, got [0]"),
    (flash_sales, {"flash_sales": {"low_stock_pct": 10}},
     "flash_sales.low_stock_pct: expected a list of integers 1..99, got 10"),
    (flash_sales, {"flash_sales": {"low_stock_pct": [50, True]}},
     "flash_sales.low_stock_pct: expected a list of integers 1..99, got [50, True]"),
]


@pytest.mark.parametrize(("parse", "sections", "message"), ERRORS)
def test_bad_values_are_refused_by_key(parse: Any, sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(sections)
    assert str(caught.value) == message


@pytest.mark.parametrize(("parse", "section", "keys"), [
    (live, "live", "['attribution_ms', 'idle_ms', 'on_air_silence_ms', 'top_rooms']"),
    (flash_sales, "flash_sales", "['low_stock_pct', 'reservation_ttl_s']"),
    (allowed_lateness, "funnel_options", "['allowed_lateness_ms']"),
])
def test_unknown_keys_are_listed_with_the_known_ones(parse: Any, section: str, keys: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({section: {"ttl": 1}})
    assert str(caught.value) == f"{section}: unknown keys ['ttl'], expected {keys}"


def kafka(table: Any) -> KafkaConfig:
    return kafka_config(Settings(sections={"kafka": table}))


def test_kafka_defaults_empty_values_and_the_password_from_env(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KAFKA_SASL_PASSWORD, raising=False)
    assert kafka({}) == KafkaConfig()
    assert kafka({"security_protocol": "", "compression": ""}) == KafkaConfig()
    monkeypatch.setenv(KAFKA_SASL_PASSWORD, "pw")
    cfg = kafka({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                 "sasl_username": "u", "sasl_password": "", "replication_factor": 3,
                 "idempotent": True, "options": {"a": 1}})
    assert cfg == KafkaConfig("SASL_SSL", "PLAIN", "u", "pw", None, None, None, 3, "lz4", True,
                              {"a": 1})
    assert "pw" not in repr(cfg)


@pytest.mark.parametrize(("table", "message"), [
    ({"security_protocol": "TLS"}, "kafka.security_protocol: expected one of "
     "('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'), got 'TLS'"),
    ({"security_protocol": "SASL_SSL"}, "kafka.sasl_mechanism: expected one of "
     "('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512') with SASL_SSL, got None"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
     f"kafka: SASL_PLAINTEXT needs sasl_username and sasl_password (or {KAFKA_SASL_PASSWORD})"),
    ({"sasl_username": 5}, "kafka.sasl_username: expected a string, got 5"),
    ({"replication_factor": 17}, "kafka.replication_factor: expected an integer 1..16, got 17"),
    ({"compression": "brotli"},
     "kafka.compression: expected one of ('none', 'gzip', 'lz4', 'zstd'), got 'brotli'"),
    ({"idempotent": "yes"}, "kafka.idempotent: expected true or false, got 'yes'"),
    ({"options": 1}, "kafka.options: expected a table of librdkafka options, got 1"),
    ({"bootstrap": "x"}, "kafka: unknown keys ['bootstrap'], expected ['compression', "
     "'idempotent', 'options', 'replication_factor', 'sasl_mechanism', 'sasl_password', "
     "'sasl_username', 'security_protocol', 'ssl_cafile', 'ssl_certfile', 'ssl_keyfile']"),
])
def test_bad_kafka_tables_are_refused_by_key(
        table: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KAFKA_SASL_PASSWORD, raising=False)
    with pytest.raises(ConfigError) as caught:
        kafka(table)
    assert str(caught.value) == message


def test_webhook_values_kept_and_absent_table_is_none() -> None:
    assert parse_webhook({}) is None and parse_webhook({"webhook": None}) is None
    secret = "s" * 16
    assert parse_webhook({"ops_webhook": {"url": "https://h/x", "secret": secret}},
                         "ops_webhook") == WebhookConfig("https://h/x", secret)
    got = parse_webhook(_freeze({"webhook": {
        "url": "http://h", "secret": secret, "timeout_ms": 1, "max_attempts": 3,
        "backoff_ms": 0, "max_backoff_ms": 5_000, "retry_horizon_s": 60}}))
    assert got == WebhookConfig("http://h", secret, 0.001, 3, 0.0, 5.0, 60.0)


SECRET = "s" * 16


@pytest.mark.parametrize(("table", "message"), [
    ([], "webhook: expected a table, got []"),
    ({"secret": SECRET}, "webhook.url: expected an http(s) URL, got None"),
    ({"url": "ftp://x", "secret": SECRET}, "webhook.url: expected an http(s) URL, got 'ftp://x'"),
    ({"url": "http://x"}, "webhook.secret: expected a string, got other"),
    ({"url": "http://x", "secret": 12345678901234567890},
     "webhook.secret: expected a string, got other"),
    ({"url": "http://x", "secret": "short-secret"},
     "webhook.secret: expected a string of >= 16 characters or whsec_<base64>, got other"),
    ({"url": "http://x", "secret": "whsec_!!"},
     "webhook.secret: expected whsec_<base64> of >= 16 key bytes, got other"),
    ({"url": "http://x", "secret": SECRET, "max_attempts": 0},
     "webhook.max_attempts: expected an integer 1..10**9, got 0"),
    ({"url": "http://x", "secret": SECRET, "backoff_ms": -1},
     "webhook.backoff_ms: expected an integer 0..10**9, got -1"),
    ({"url": "http://x", "secret": SECRET, "timeout_ms": True},
     "webhook.timeout_ms: expected an integer 1..10**9, got True"),
    ({"url": "http://x", "secret": SECRET, "retry_horizon_s": 10**9 + 1},
     "webhook.retry_horizon_s: expected an integer 1..10**9, got 1000000001"),
])
def test_bad_webhook_tables_are_refused_by_key(table: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_webhook({"webhook": table})
    assert str(caught.value) == message


def test_unknown_webhook_keys_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_webhook({"webhook": {"url": "http://x", "secret": SECRET, "max_attempt": 3}})
    assert str(caught.value) == (
        "webhook: unknown keys ['max_attempt'], expected ['backoff_ms', 'max_attempts', "
        "'max_backoff_ms', 'retry_horizon_s', 'secret', 'timeout_ms', 'url']")


def test_coupon_tables_kept() -> None:
    sh = ZoneInfo("Asia/Shanghai")
    cfg = coupons(_freeze({
        "cart": {"steps": [{"after_min": 5}, {"after_min": 6, "coupon_fen": 7}]},
        "coupons": {"daily_cap": 3, "quiet_hours": "01:02-03:04",
                    "cart_recovery": {"cooldown_min": 9, "budget": 0},
                    "threshold_nudge": {"threshold_fen": 100, "band_fen": 100, "enabled": False},
                    "new_user": {"cooldown_days": 2, "coupon_fen": 0},
                    "live_followup": {"min_watch_min": 0, "within_min": 1}},
        "live": {"idle_ms": 60_000}}), sh)
    assert cfg == CouponConfig(
        steps=(Step(5 * 60_000, 0), Step(6 * 60_000, 7)),
        rules={"cart_recovery": Rule("cart_recovery", True, 0, 0, 9 * 60_000),
               "threshold_nudge": Rule("threshold_nudge", False, 2000, None, 7 * 86_400_000),
               "new_user": Rule("new_user", True, 0, None, 2 * 86_400_000),
               "live_followup": Rule("live_followup", True, 500, None, 86_400_000)},
        daily_cap=3, quiet_start_min=62, quiet_end_min=184, threshold_fen=100, band_fen=100,
        min_watch_ms=0, within_ms=60_000, zone=sh, idle_ms=60_000)
    default = coupons({}, sh)
    assert default.steps == (Step(3_600_000, 0), Step(86_400_000, 1000), Step(259_200_000, 0))
    assert default.rules["new_user"] == Rule("new_user", True, 1000, None, 0)
    assert (default.daily_cap, default.threshold_fen, default.band_fen) == (2, 19_900, 3_000)
    assert (default.min_watch_ms, default.within_ms, default.idle_ms) == (600_000, 1_800_000,
                                                                          300_000)


@pytest.mark.parametrize(("sections", "message"), [
    ({"cart": 3}, "cart: expected a table, got 3"),
    ({"cart": {"steps": []}}, "cart.steps: expected a non-empty array of tables, got []"),
    ({"cart": {"steps": "60"}}, "cart.steps: expected a non-empty array of tables, got '60'"),
    ({"cart": {"steps": [5]}}, "cart.steps[0]: expected a table, got 5"),
    ({"cart": {"steps": [{"after_min": 0}]}},
     "cart.steps[0].after_min: expected an integer >= 1, got 0"),
    ({"cart": {"steps": [{"after_min": 60}, {"after_min": 60}]}},
     "cart.steps[1].after_min: expected increasing delays, got 60"),
    ({"cart": {"steps": [{"after_min": 60, "coupon_fen": -1}]}},
     "cart.steps[0].coupon_fen: expected an integer >= 0, got -1"),
    ({"coupons": []}, "coupons: expected a table, got []"),
    ({"coupons": {"daily_cap": 0}}, "coupons.daily_cap: expected an integer >= 1, got 0"),
    ({"coupons": {"quiet_hours": "22-08-01"}},
     "coupons.quiet_hours: expected 'HH:MM-HH:MM', got '22-08-01'"),
    ({"coupons": {"quiet_hours": 22}}, "coupons.quiet_hours: expected 'HH:MM-HH:MM', got 22"),
    ({"coupons": {"quiet_hours": "22:00-24:00"}},
     "coupons.quiet_hours: expected HH:MM, got '24:00'"),
    ({"coupons": {"new_user": 1}}, "coupons.new_user: expected a table, got 1"),
    ({"coupons": {"new_user": {"enabled": 1}}},
     "coupons.new_user.enabled: expected true or false, got 1"),
    ({"coupons": {"new_user": {"budget": True}}},
     "coupons.new_user.budget: expected an integer >= 0, got True"),
    ({"coupons": {"cart_recovery": {"cooldown_min": -1}}},
     "coupons.cart_recovery.cooldown_min: expected an integer >= 0, got -1"),
    ({"coupons": {"threshold_nudge": {"threshold_fen": 0}}},
     "coupons.threshold_nudge.threshold_fen: expected an integer >= 1, got 0"),
    ({"coupons": {"threshold_nudge": {"threshold_fen": 100, "band_fen": 101}}},
     "coupons.threshold_nudge.band_fen: expected <= threshold_fen, got 101"),
    ({"coupons": {"live_followup": {"within_min": 0}}},
     "coupons.live_followup.within_min: expected an integer >= 1, got 0"),
    ({"coupons": {"live_followup": {"min_watch_min": 1.5}}},
     "coupons.live_followup.min_watch_min: expected an integer >= 0, got 1.5"),
    ({"live": {"idle_ms": 1}}, "live.idle_ms: expected an integer 1000..86400000, got 1"),
])
def test_bad_coupon_tables_are_refused_by_key(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        coupons(sections, ZoneInfo("Asia/Shanghai"))
    assert str(caught.value) == message


@pytest.mark.parametrize(("sections", "message"), [
    ({"coupons": {"nonsense": 1}}, "coupons: unknown keys ['nonsense'], expected "
     "['cart_recovery', 'daily_cap', 'live_followup', 'new_user', 'quiet_hours', "
     "'threshold_nudge']"),
    ({"coupons": {"new_user": {"bugdet": 5}}}, "coupons.new_user: unknown keys ['bugdet'], "
     "expected ['budget', 'cooldown_days', 'cooldown_min', 'coupon_fen', 'enabled']"),
    ({"cart": {"step": []}}, "cart: unknown keys ['step'], expected ['steps']"),
    ({"cart": {"steps": [{"after": 1}]}},
     "cart.steps[0]: unknown keys ['after'], expected ['after_min', 'coupon_fen']"),
    ({"cart": {"steps": [{"coupon_fen": 1}]}},
     "cart.steps[0].after_min: expected an integer >= 1, got None"),
])
def test_unknown_or_missing_coupon_keys_are_named(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        coupons(sections, ZoneInfo("Asia/Shanghai"))
    assert str(caught.value) == message
