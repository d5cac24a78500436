FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shopstream shopstream
COPY streams streams
COPY agents agents
COPY schemas schemas
COPY sinks sinks
COPY monitoring monitoring
RUN pip install --no-cache-dir .
ENTRYPOINT ["shopstream"]
