"""docker-compose.yml would run a production-shaped stack (no Docker engine here: it is parsed
and checked point by point)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_kafka_is_three_kraft_brokers_reachable_from_the_host():
    brokers = {n: s for n, s in SERVICES.items() if n.startswith("kafka-")}
    assert len(brokers) == 3
    for svc in brokers.values():
        env = svc["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert "EXTERNAL://localhost:" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert svc["volumes"] and svc["healthcheck"]
    assert "replication_factor = 3" in COMPOSE["configs"]["shopstream_toml"]["content"]


def test_redis_keeps_an_aof_on_a_volume():
    redis = SERVICES["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(v.startswith("redis-data:") for v in redis["volumes"])


def test_shopstream_services_wait_for_healthy_dependencies_and_restart():
    for name in ("worker", "api", "simulate"):
        svc = SERVICES[name]
        assert all(dep["condition"] == "service_healthy" for dep in svc["depends_on"].values())
        assert set(svc["depends_on"]) == {"kafka-1", "kafka-2", "kafka-3", "redis"}
    for name, svc in SERVICES.items():
        if name != "simulate":
            assert svc["restart"] == "unless-stopped", name
            assert "healthcheck" in svc, name
    assert SERVICES["worker"]["deploy"]["replicas"] == 3
    assert SERVICES["simulate"]["profiles"] == ["simulate"]


def test_workers_are_scrapable_and_the_api_needs_its_secrets():
    assert SERVICES["worker"]["environment"]["SHOPSTREAM_WORKER_WEB_HOST"] == "0.0.0.0"
    api_env = SERVICES["api"]["environment"]
    for var in ("SHOPSTREAM_ADMIN_TOKEN", "SHOPSTREAM_INGEST_KEY", "SHOPSTREAM_READ_KEY"):
        assert ":?" in api_env[var], var


def test_prometheus_loads_the_rules_and_alertmanager_routes_to_a_webhook():
    mounts = SERVICES["prometheus"]["volumes"]
    assert "./monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    prom = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"]
    am = yaml.safe_load((ROOT / "monitoring" / "alertmanager.yml").read_text())
    receiver = next(r for r in am["receivers"] if r["name"] == am["route"]["receiver"])
    assert receiver["webhook_configs"][0]["url"].startswith("http")


def test_grafana_is_provisioned_from_the_repository():
    mounts = SERVICES["grafana"]["volumes"]
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
    assert (ROOT / "monitoring/grafana/dashboards/shopstream.json").exists()
