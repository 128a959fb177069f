"""The preview page in a real headless Chromium (Debian's, driven by Playwright), at
desktop and phone widths. Screenshots are left in out/screenshots/ to look at."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from service import bootstrap
from service.domain.planning import plan_sessions
from service.preview import write_preview

ROOT = Path(__file__).parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    out = tmp_path_factory.mktemp("preview")
    inputs = bootstrap.load_inputs(ROOT / "config" / "cohort.example.yaml")
    plan = plan_sessions(inputs.cohort, inputs.busy, now=datetime(2027, 2, 1, tzinfo=UTC))
    count = write_preview(plan, inputs.templates, out)
    return out / "index.html", count


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, index: Path, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(index.as_uri())
    return page


def test_every_email_is_listed_and_the_first_is_open_beside_the_list(browser, preview):
    index, count = preview
    page = open_page(browser, index, DESKTOP)
    entries = page.locator("li[data-person]")
    expect(entries).to_have_count(count)
    first = entries.first.locator("a.open").get_attribute("href")
    assert page.locator("iframe").get_attribute("src") == first
    page.locator("a.open").nth(5).click()
    body = page.frame_locator("iframe[name=reader]").locator("body")
    expect(body).to_contain_text("Hi ")
    assert "{{" not in body.inner_text()
    page.screenshot(path=SCREENSHOTS / "preview-desktop.png")


def test_filters_by_person_stage_and_day(browser, preview):
    index, count = preview
    page = open_page(browser, index, DESKTOP)
    visible = page.locator("li[data-person]:visible")

    page.select_option("select[name=person]", "zoe.nunez@example.net")
    expect(visible).to_have_count(9)  # her whole program: nine emails
    assert set(visible.evaluate_all("els => els.map(e => e.dataset.person)")) == {"zoe.nunez@example.net"}
    expect(page.locator("#shown")).to_have_text(f"Showing 9 of {count} emails.")

    page.select_option("select[name=stage]", "welcome")
    expect(visible).to_have_count(1)
    expect(visible.first).to_contain_text("Welcome")

    page.select_option("select[name=person]", "")
    welcomes = visible.count()
    assert welcomes == count // 9  # one welcome for each person of each pair, nine emails each
    day = page.locator("select[name=date] option").nth(1).get_attribute("value")
    page.select_option("select[name=stage]", "")
    page.select_option("select[name=date]", day)
    dates = set(visible.evaluate_all("els => els.map(e => e.dataset.date)"))
    assert dates == {day}
    expect(page.locator("section:visible h2")).to_have_count(1)  # other days' headings are hidden

    page.select_option("select[name=stage]", "follow_up")
    expect(visible).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()

    page.click("button[type=reset]")
    expect(visible).to_have_count(count)


def test_a_phone_shows_the_list_then_the_email_with_a_way_back(browser, preview):
    index, _ = preview
    page = open_page(browser, index, PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing cut off sideways
    expect(page.locator("iframe")).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "preview-phone-list.png")

    page.select_option("select[name=stage]", "session1_prep")
    page.locator("li[data-person]:visible a.open").first.click()
    frame = page.locator("iframe")
    expect(frame).to_be_visible()
    box = frame.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] == PHONE["width"]
    expect(page.frame_locator("iframe[name=reader]").locator("body")).to_contain_text("SMART")
    expect(page.locator("nav")).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "preview-phone-email.png")

    page.click("#back")
    expect(page.locator("nav")).to_be_visible()
    expect(page.locator("select[name=stage]")).to_have_value("session1_prep")  # the filter is kept
