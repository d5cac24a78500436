#!/usr/bin/env bash
# Separate venv for the Quix Streams baseline: quixstreams pins confluent-kafka 2.12.x,
# which must not replace shopstream's own confluent-kafka in the main venv.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${QUIX_VENV:-$here/.venv-quix}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "quixstreams==3.28.*" orjson
echo "$venv"
