import dataclasses

import pytest

from shopstream.core.errors import ConfigError
from shopstream.core.settings import load_settings


def test_env_overrides_toml_and_secrets_are_hidden(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('partitions = 12\nadmin_token = "s3cret"\n[[funnels]]\nname = "x"\n')
    s = load_settings(env={"SHOPSTREAM_PARTITIONS": "16", "SHOPSTREAM_CONFIG": str(cfg),
                           "SHOPSTREAM_STATE_DIR": str(tmp_path)})
    assert s.partitions == 16
    assert s.admin_token == "s3cret"
    assert "s3cret" not in repr(s) and s.public_dict()["admin_token"] == "***"
    assert s.public_dict()["sections"]["funnels"] == [{"name": "x"}]


def test_settings_are_immutable_all_the_way_down_and_copies_are_validated(tmp_path):
    s = dataclasses.replace(load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)}),
                            sections={"flash_sales": {"low_stock_pct": [10, 5]}})
    with pytest.raises(TypeError):
        s.sections["flash_sales"]["low_stock_pct"] = [1]  # type: ignore[index]
    with pytest.raises(TypeError):
        s.sections["flash_sales"]["low_stock_pct"][0] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.partitions = 3  # type: ignore[misc]
    assert dataclasses.replace(s, partitions=3).partitions == 3
    with pytest.raises(ConfigError, match="partitions: expected >= 1, got 0"):
        dataclasses.replace(s, partitions=0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOPSTREAM_PARTITIONS": "many"},
         "SHOPSTREAM_PARTITIONS: expected an integer, got 'many'"),
        ({"SHOPSTREAM_PARTITIONS": "0"}, "partitions: expected >= 1, got 0"),
        ({"SHOPSTREAM_TIMEZONE": "Mars/Base"}, "timezone: expected an IANA zone name"),
        ({"SHOPSTREAM_BROKER": "localhost:9092"}, "broker: expected kafka://host:port"),
        ({"SHOPSTREAM_REDIS_URL": "localhost"}, "redis_url: expected redis://"),
        ({"SHOPSTREAM_REDIS_CLUSTER": "maybe"}, "expected a boolean"),
        ({"SHOPSTREAM_MAX_FUTURE_MS": "-1"}, "max_future_ms: expected >= 0"),
        ({"SHOPSTREAM_DEDUP_HORIZON_MS": "2147483648"},
         "dedup_horizon_ms: expected >= 0 and < 2147483648 .24.8 days"),
    ],
)
def test_bad_settings_name_key_expected_and_got(env, message, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(env={**env, "SHOPSTREAM_STATE_DIR": str(tmp_path)})


def test_bad_toml_is_reported_with_its_path(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("partitions = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)}, config_path=str(cfg))
    cfg.write_text("partitons = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'partitons'"):
        load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)}, config_path=str(cfg))


def test_agents_select_capabilities_in_batch_order():
    import redis.asyncio as aioredis

    from shopstream.agents.registry import build_agents, check_config

    s = load_settings(env={"SHOPSTREAM_AGENTS": "anomalies, coupons, live, funnel"})
    client = aioredis.Redis()  # never connected: building agents does no I/O
    assert [a.name for a in build_agents(s, client)] == ["funnel", "coupons", "live",
                                                         "anomalies"]
    assert [a.name for a in build_agents(load_settings(env={}), client)] == [
        "event_stats", "funnel", "flash_sale", "coupons", "live", "ops", "anomalies"]
    for bad in ("funnel,carts", ", ,"):
        with pytest.raises(ConfigError, match="agents: expected names from event_stats"):
            check_config(load_settings(env={"SHOPSTREAM_AGENTS": bad}))


def test_the_flash_sale_agent_is_selected_by_its_name_or_its_earlier_one():
    import redis.asyncio as aioredis

    from shopstream.agents.registry import build_agents

    client = aioredis.Redis()  # never connected: building agents does no I/O
    for given in ("flash_sale,funnel", "funnel, inventory", "inventory,flash_sale,funnel"):
        s = load_settings(env={"SHOPSTREAM_AGENTS": given})
        assert [a.name for a in build_agents(s, client)] == ["funnel", "flash_sale"], given


def test_public_dict_masks_secrets_in_tables_and_urls(tmp_path):
    s = dataclasses.replace(load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)}),
                            redis_url="rediss://app:pw-1@h:6380/0", ingest_key="k" * 20,
                            sections={"webhook": {"url": "https://x", "secret": "s" * 20}})
    shown = s.public_dict()
    assert shown["sections"]["webhook"] == {"url": "https://x", "secret": "***"}
    assert shown["redis_url"] == "rediss://app:***@h:6380/0" and shown["ingest_key"] == "***"
    assert shown["read_key"] is None
