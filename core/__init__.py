"""The bottom layer: settings, errors, environment names, logging, the JSON codec, time
units, retry backoff."""
