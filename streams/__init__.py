"""The worker: the Faust app, the batch loop, deduplication and its rebuild."""
