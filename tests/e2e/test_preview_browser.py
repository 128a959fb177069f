"""The preview page in a real headless Chromium."""

import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from service import bootstrap
from service.domain.planning import plan_sessions
from service.preview import write_preview

ROOT = Path(__file__).parents[2]
CHROMIUM = shutil.which("chromium") or "chromium"


def rendered_dom(page: Path, profile: Path) -> str:
    """The document after Chromium has loaded it (scripts and layout included)."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.opened: list[str] = []
        self.frames: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("target") == "body":
            self.opened.append(attrs["href"])
        if tag == "iframe":
            self.frames.append(attrs["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_the_preview_lists_every_email_and_opens_each_one(tmp_path):
    inputs = bootstrap.load_inputs(ROOT / "config" / "cohort.example.yaml")
    plan = plan_sessions(inputs.cohort, inputs.busy, now=datetime(2027, 2, 1, tzinfo=UTC))
    count = write_preview(plan, inputs.templates, tmp_path / "out", pair_id="maya-zoe")

    index = Links()
    index.feed(rendered_dom(tmp_path / "out" / "index.html", tmp_path / "profile"))
    assert len(index.opened) == count == 18
    assert index.frames == [index.opened[0]]  # the first email is open beside the list
    assert "Zoë Ñúñez" in "".join(index.text)

    email = Links()
    email.feed(rendered_dom(tmp_path / "out" / index.opened[-1], tmp_path / "profile"))
    words = " ".join("".join(email.text).split())
    assert "Hi Maya" in words or "Hi Zoë" in words
    assert "{{" not in words
