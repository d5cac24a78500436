"""shopstream: live e-commerce promotion metrics and actions on Kafka and Redis.

This package is the application (CLI, HTTP API, demo, embedded infra, simulator, replay);
the layers below it are its subpackages ``streams``, ``agents``, ``sinks``, ``kafka_io``,
``monitoring``, ``schemas`` and ``core`` (see the README's Layout section).
"""

__version__ = "0.2.0"
