"""The settings model's types and bounds hold for every way in: env vars, TOML and copies."""

import dataclasses
import math

import pytest

from shopstream.core.env import ENV_FIELDS
from shopstream.core.errors import ConfigError
from shopstream.core.settings import Settings, load_settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOPSTREAM_REDIS_TIMEOUT_S": "nan"}, "redis_timeout_s: expected > 0, got nan"),
        ({"SHOPSTREAM_BATCH_WITHIN_S": "-inf"}, "batch_within_s: expected > 0, got -inf"),
        ({"SHOPSTREAM_LOG_LEVEL": "INFO\n"}, "log_level: expected DEBUG|INFO|WARNING|ERROR"),
        ({"SHOPSTREAM_API_PORT": "65536"}, "api_port: expected 0..65535, got 65536"),
        ({"SHOPSTREAM_MAX_RECORD_BYTES": "1023"}, "max_record_bytes: expected >= 1024, got 1023"),
    ],
)
def test_bounds_refuse_what_the_old_checks_let_through_or_named(env, message, tmp_path):
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_settings(env={**env, "SHOPSTREAM_STATE_DIR": str(tmp_path)})


def test_toml_values_are_not_silently_truncated(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("partitions = 12.5\n")
    with pytest.raises(ConfigError, match=r"^partitions: expected an integer, got 12\.5$"):
        load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)}, config_path=str(cfg))
    cfg.write_text('partitions = "12"\nredis_cluster = "yes"\nbatch_within_s = 1\n')
    s = load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)}, config_path=str(cfg))
    assert (s.partitions, s.redis_cluster, s.batch_within_s) == (12, True, 1.0)
    assert type(s.batch_within_s) is float


def test_copies_of_the_wrong_type_are_refused_naming_the_field(tmp_path):
    s = load_settings(env={"SHOPSTREAM_STATE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^partitions: expected an integer, got '3'$"):
        dataclasses.replace(s, partitions="3")
    with pytest.raises(ConfigError, match=r"^redis_cluster: expected a boolean, got 1$"):
        dataclasses.replace(s, redis_cluster=1)
    with pytest.raises(ConfigError, match="^read_key: expected a key without surrounding spaces"):
        dataclasses.replace(s, read_key=" padded ")
    assert dataclasses.replace(s, produce_timeout_s=2).produce_timeout_s == 2.0


@pytest.mark.parametrize(("word", "value"), [("yes", True), ("On", True), ("0", False),
                                             ("off", False), ("FALSE", False)])
def test_env_booleans_and_numbers_read_as_before(word, value, tmp_path):
    s = load_settings(env={"SHOPSTREAM_REDIS_CLUSTER": word, "SHOPSTREAM_PARTITIONS": " 4 ",
                           "SHOPSTREAM_BATCH_WITHIN_S": "1e-2",
                           "SHOPSTREAM_STATE_DIR": str(tmp_path)})
    assert s.redis_cluster is value
    assert s.partitions == 4 and math.isclose(s.batch_within_s, 0.01)


def test_every_env_var_sets_a_field_of_the_model():
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(ENV_FIELDS.values()) <= names
    assert names - set(ENV_FIELDS.values()) == {"sections"}
