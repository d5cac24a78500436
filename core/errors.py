"""The root of every error shopstream raises on purpose."""

from typing import ClassVar


class ShopstreamError(Exception):
    """Base of all shopstream errors."""

    #: True when trying the same operation again may succeed.
    retriable: ClassVar[bool] = False


class ConfigError(ShopstreamError):
    """Settings or configuration files are invalid; the message says which key and why.

    Not retriable: the same settings fail the same way until someone edits them.
    """
