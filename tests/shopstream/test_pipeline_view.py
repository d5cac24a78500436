"""``/v1/pipeline`` per partition: a fence at or beyond the log's end is healthy only when it
proves the log reached it (the fence carries this log's id); else it is shown as refused."""

from __future__ import annotations

import pytest

from shopstream.http_pipeline import partition_view

LOG, OLD = "AaJJz3LlcdCIz1IDI9e86w", "AaJJz3bReAO9aH00SvKTbw"


@pytest.mark.parametrize(("applied", "fence_log", "end", "log_id", "want"), [
    (-1, None, None, LOG, ("ok", None, None)),
    (-1, None, 40, LOG, ("ok", 40, 40)),
    (29, LOG, 40, LOG, ("ok", 40, 10)),
    # the broker's high watermark trails what this very log holds: not above, not negative
    (6706, LOG, 6650, LOG, ("ok", 6707, 0)),
    # a fence of another log: nothing of this log is applied, whatever the offsets say
    (6706, OLD, 3880, LOG, ("other_log", 3880, 3880)),
    (48, OLD, 3880, LOG, ("other_log", 3880, 3880)),
    # no proof which log the fence is of (no topic ids): beyond the end is not healthy
    (6706, None, 205, LOG, ("fence_ahead", 205, 205)),
    (6706, LOG, 205, None, ("fence_ahead", 205, 205)),
    (29, None, 40, None, ("ok", 40, 10)),
])
def test_partition_view(applied, fence_log, end, log_id, want):
    state, shown_end, lag = got = partition_view(applied, fence_log, end, log_id)
    assert got == want
    if state == "ok" and shown_end is not None:
        assert applied < shown_end and lag >= 0
