FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY shopstream shopstream
COPY core core
COPY kafka_io kafka_io
COPY streams streams
COPY agents agents
COPY schemas schemas
COPY sinks sinks
COPY monitoring monitoring
# No `embedded` extra: in a container the broker and Redis are services of their own.
RUN pip install --no-cache-dir .
ENTRYPOINT ["shopstream"]
