# The daemon in a container. Mount the cohort folder at /config and keep the state in /data:
#   docker run -v $PWD/config:/config -v mentorship-state:/data -p 8080:8080 IMAGE
# The web pages (dashboard, participant links, /healthz, /metrics) are on port 8080; put them
# behind an HTTPS proxy and set http.public_url in the cohort file to its address.

# Build stage: turns the source into a wheel (the email templates ride inside it as package data).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY templates ./templates
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Final stage: the wheel installed like any package, no source tree. The example configuration
# stays in /app/config to try the image without a mount.
FROM python:3.11-slim
WORKDIR /app
COPY config ./config
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && useradd --create-home --uid 10001 mentorship \
 && mkdir /data && chown mentorship /data

USER mentorship
VOLUME /data
EXPOSE 8080
# /healthz answers 503 when the daemon's last tick is older than three poll intervals.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=5)"]
ENTRYPOINT ["mentorship"]
CMD ["run", "--config", "/config/cohort.yaml", "--state", "/data/state.sqlite", "--http", "0.0.0.0:8080"]
