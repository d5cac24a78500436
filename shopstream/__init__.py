"""shopstream: live e-commerce promotion metrics and actions on Kafka and Redis."""

from shopstream.errors import ConfigError, ShopstreamError
from shopstream.settings import Settings, load_settings

__all__ = ["ConfigError", "Settings", "ShopstreamError", "load_settings"]
__version__ = "0.1.0"
