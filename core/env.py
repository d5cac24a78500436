"""Every environment variable shopstream reads, in one place."""

PREFIX = "SHOPSTREAM_"

#: Environment variable name -> Settings field it sets.
ENV_FIELDS: dict[str, str] = {
    "SHOPSTREAM_BROKER": "broker",
    "SHOPSTREAM_REDIS_URL": "redis_url",
    "SHOPSTREAM_REDIS_CLUSTER": "redis_cluster",
    "SHOPSTREAM_APP_ID": "app_id",
    "SHOPSTREAM_PARTITIONS": "partitions",
    "SHOPSTREAM_EVENTS_TOPIC": "events_topic",
    "SHOPSTREAM_DEAD_LETTER_TOPIC": "dead_letter_topic",
    "SHOPSTREAM_ALERTS_TOPIC": "alerts_topic",
    "SHOPSTREAM_PUSHES_TOPIC": "pushes_topic",
    "SHOPSTREAM_CUSTOMER_EVENTS_TOPIC": "customer_events_topic",
    "SHOPSTREAM_PUSH_RESULTS_KEEP_S": "push_results_keep_s",
    "SHOPSTREAM_AGENTS": "agents",
    "SHOPSTREAM_BATCH_MAX_RECORDS": "batch_max_records",
    "SHOPSTREAM_BATCH_MAX_BYTES": "batch_max_bytes",
    "SHOPSTREAM_BATCH_WITHIN_S": "batch_within_s",
    "SHOPSTREAM_DEDUP_HORIZON_MS": "dedup_horizon_ms",
    "SHOPSTREAM_DEDUP_MAX_IDS": "dedup_max_ids",
    "SHOPSTREAM_MAX_RECORD_BYTES": "max_record_bytes",
    "SHOPSTREAM_MAX_FUTURE_MS": "max_future_ms",
    "SHOPSTREAM_TIMEZONE": "timezone",
    "SHOPSTREAM_API_HOST": "api_host",
    "SHOPSTREAM_API_PORT": "api_port",
    "SHOPSTREAM_WORKER_WEB_PORT": "worker_web_port",
    "SHOPSTREAM_WORKER_WEB_HOST": "worker_web_host",
    "SHOPSTREAM_RELAY": "relay",
    "SHOPSTREAM_RELAY_WEB_PORT": "relay_web_port",
    "SHOPSTREAM_ADMIN_TOKEN": "admin_token",
    "SHOPSTREAM_INGEST_KEY": "ingest_key",
    "SHOPSTREAM_READ_KEY": "read_key",
    "SHOPSTREAM_STATE_DIR": "state_dir",
    "SHOPSTREAM_LOG_LEVEL": "log_level",
    "SHOPSTREAM_PRODUCE_TIMEOUT_S": "produce_timeout_s",
    "SHOPSTREAM_REDIS_TIMEOUT_S": "redis_timeout_s",
    "SHOPSTREAM_REDIS_OUTAGE_GIVE_UP_S": "redis_outage_give_up_s",
    "SHOPSTREAM_API_PRODUCE_TIMEOUT_S": "api_produce_timeout_s",
}

#: The ``[kafka]`` table's SASL password, when it should not sit in the TOML file.
KAFKA_SASL_PASSWORD = "SHOPSTREAM_KAFKA_SASL_PASSWORD"  # noqa: S105 - a variable's name

#: Path of the optional TOML file.
CONFIG_FILE = "SHOPSTREAM_CONFIG"
