"""One retry delay for every retry loop: exponential, capped, with full jitter.

Full jitter (a uniform draw between 0 and the exponential delay) keeps clients that failed
together from retrying together: 1,000 pushes refused in one second come back spread over the
delay instead of as 1,000 requests in the same instant. The random source is a parameter so
that tests can pin the draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable

#: Doublings after which the delay stops growing before the cap (2**30 of any first delay).
MAX_DOUBLINGS = 30


def full_jitter(attempt: int, first_s: float, cap_s: float,
                rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry ``attempt`` (0 = the first retry): uniform in
    [0, min(cap_s, first_s * 2**attempt)]."""
    ceiling = min(cap_s, first_s * 2 ** min(max(attempt, 0), MAX_DOUBLINGS))
    return rand() * ceiling
