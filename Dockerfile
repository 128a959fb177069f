# The daemon in a container. Mount the cohort folder at /config and keep the state in /data:
#   docker run -v $PWD/config:/config -v mentorship-state:/data IMAGE
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY templates ./templates
COPY config ./config
RUN pip install --no-cache-dir -e . \
 && useradd --create-home --uid 10001 mentorship \
 && mkdir /data && chown mentorship /data

USER mentorship
VOLUME /data
ENTRYPOINT ["mentorship"]
CMD ["run", "--config", "/config/cohort.yaml", "--state", "/data/state.sqlite"]
