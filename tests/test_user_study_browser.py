"""The study page in a real browser: headless Chromium driven by selenium.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver; other
paths via RH_CHROMIUM / RH_CHROMEDRIVER) and the `selenium` package; nothing is downloaded at
run time. Without them the tests are skipped with the reason, unless RH_REQUIRE_BROWSER=1 (set
by .ci/run), which makes a missing browser a failure.

The last tests open the Table V report rendered from hostile votes files (markup in file names,
choices, groups, participant ids, the title) and a study page given a markup participant id: no
script may run (no alert dialog) and each string must read back as plain text.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
import time
from pathlib import Path

import pytest
from study_helpers import (
    HOSTILE_PARTICIPANT,
    HOSTILE_TITLE,
    hostile_study,
    render_report,
    write_inputs,
)

from regionharmony.study.build import build_study
from regionharmony.study.votes import group_seed, load_key, load_votes, votes_payload

CHROMIUM = Path(os.environ.get("RH_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("RH_CHROMEDRIVER", "/usr/bin/chromedriver"))
METHODS = ("full", "l1", "rainnet")  # + composite: four images per group
KEYS = ("HCOCO/c1_1_1", "HCOCO/c2_1_1", "HAdobe5k/a1_1_1", "HFlickr/f9_1_2", "Hday2night/d_1_1")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install {package})"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = missing_browser()
    if reason:
        if os.environ.get("RH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RH_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('profile')}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    group_dir, methods = write_inputs(root / "in", keys=KEYS, methods=METHODS)
    build_study(group_dir, methods, root / "study")
    return root / "study"


# -- driving the page -----------------------------------------------------------------------------
def wait(driver, condition, timeout: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def shown_options(driver) -> list[str]:
    """The option ids in the order on screen, read from the image files shown."""
    from selenium.webdriver.common.by import By

    images = driver.find_elements(By.CSS_SELECTOR, "#options img")
    return [Path(img.get_attribute("src")).stem for img in images]


def progress(driver) -> str:
    return driver.find_element("id", "progress-text").text


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def images_loaded(driver) -> bool:
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll('#options img')];"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
    )


def start(driver, url: str, participant: str) -> None:
    """Open the page and begin as `participant` (after `Change participant` if the browser
    resumes an earlier one).

    A page already open is not navigated again: what a participant does is press `Change
    participant`. Chromium 156 headless, right after a browser-initiated navigation to the same
    file:// page, showed an empty localStorage to the new document in 2 of 13 runs (the first on
    a machine; the earlier participant's records were gone), a race of the browser's storage
    backend, not of the page, which only ever adds records."""
    if driver.current_url != url:
        driver.get(url)
    wait(driver, lambda d: d.execute_script("return state !== undefined;"))
    if driver.find_element("id", "switch").is_displayed():
        driver.find_element("id", "switch").click()
    field = wait(driver, lambda d: d.find_element("id", "participant"))
    field.send_keys(participant + "\n")
    wait(driver, lambda d: progress(d).startswith("Group 1 of"))


def wait_download(folder: Path, timeout: float = 10) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == ".json"]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder} after {timeout} s")


# -- tests ----------------------------------------------------------------------------------------
def test_one_participant_plays_the_whole_study_and_exports(browser, study):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    key = load_key(study.with_name("study.key.json"))
    start(browser, study.joinpath("index.html").as_uri(), "alice")
    assert browser.find_element("id", "who").text == "Participant: alice"
    assert wait(browser, images_loaded)  # opened as a file, the images load
    shown: dict[int, list[str]] = {}  # position -> order on screen
    chosen: dict[int, str] = {}  # position -> option id

    def at(position: int) -> list[str]:
        assert progress(browser).startswith(f"Group {position} of {len(KEYS)}")
        shown.setdefault(position, shown_options(browser))
        assert shown_options(browser) == shown[position]  # the same order when seen again
        return shown[position]

    def click(index: int) -> None:
        browser.find_elements(By.CSS_SELECTOR, "#options .option")[index].click()

    chosen[1] = at(1)[1]
    press(browser, "2")
    chosen[2] = at(2)[3]
    click(3)
    browser.refresh()  # midway: nothing may be lost
    wait(browser, lambda d: progress(d) == f"Group 3 of {len(KEYS)} \u00b7 2 answered")
    at(3)
    press(browser, Keys.ARROW_RIGHT)  # skip group 3 ...
    at(4)
    press(browser, Keys.ARROW_LEFT)  # ... come back to it
    chosen[3] = at(3)[0]
    click(0)
    chosen[4] = at(4)[2]
    press(browser, "3")
    at(5)
    browser.find_element("id", "back").click()  # back to 4: its choice is marked
    marked = browser.find_elements(By.CSS_SELECTOR, "#options .option.chosen img")
    assert [Path(m.get_attribute("src")).stem for m in marked] == [chosen[4]]
    browser.find_element("id", "skip").click()  # skipping keeps the vote of group 4
    chosen[5] = at(5)[3]
    press(browser, "4")
    done = wait(browser, lambda d: d.find_element("id", "done-text"))
    assert "all 5 groups" in done.text
    browser.find_element("id", "export").click()
    exported = wait_download(browser.downloads)
    data = json.loads(exported.read_text())

    assert exported.name == f"votes-{key.study_id}-alice.json"
    assert data["study_id"] == key.study_id and data["participant"] == "alice"
    assert [v["position"] for v in data["votes"]] == [1, 2, 3, 4, 5]
    for vote in data["votes"]:
        position = vote["position"]
        assert vote["group"] == data["group_order"][position - 1]
        assert vote["shown"] == shown[position]
        assert vote["choice"] == chosen[position]
        assert vote["choice_index"] == shown[position].index(chosen[position]) + 1
        assert vote["seed"] == group_seed("alice", vote["group"])
        assert vote["time"].endswith("Z") and vote["elapsed_ms"] >= 0
    # the Python side accepts the file and reads the same choices
    loaded = load_votes(browser.downloads, key)
    assert not loaded.rejected and [f.participant for f in loaded.files] == ["alice"]
    methods = {v.group_key: v.choice for v in loaded.votes}
    expected = votes_payload(key, "alice", methods)
    strip = ("time", "elapsed_ms")
    assert [{k: v for k, v in vote.items() if k not in strip} for vote in data["votes"]] == [
        {k: v for k, v in vote.items() if k not in strip} for vote in expected["votes"]
    ]
    assert data["group_order"] == expected["group_order"]
    exported.unlink()


def test_no_method_name_appears_in_the_page(browser, study):
    start(browser, study.joinpath("index.html").as_uri(), "bob")
    browser.find_elements("css selector", "#options .option")[0].click()
    wait(browser, lambda d: progress(d).startswith("Group 2 of"))
    page = browser.execute_script("return document.documentElement.outerHTML;").lower()
    storage = browser.execute_script("return JSON.stringify({...window.localStorage});").lower()
    sources = " ".join(
        browser.execute_script(
            "return [...document.querySelectorAll('[src], [href]')]"
            ".map(e => e.getAttribute('src') || e.getAttribute('href'));"
        )
    ).lower()
    for name in ("composite", *METHODS):
        for where, text in (("DOM", page), ("localStorage", storage), ("file names", sources)):
            assert name not in text, f"{name!r} in the {where}"
        assert name not in browser.title.lower()
    assert "alice" in storage  # the first participant's answers survive a change of participant


def test_the_page_shuffles_exactly_like_python(browser, study):
    from regionharmony.study.votes import fnv1a32, shuffled

    browser.get(study.joinpath("index.html").as_uri())
    items = [f"o{i:02d}" for i in range(7)]
    texts = [f"participant {i}\x1fg{i * 7919:x}" for i in range(100)] + ["Zoë 😀\x1fgroup", ""]
    result = browser.execute_script(
        "return arguments[1].map(t => [fnv1a(t), shuffled(arguments[0], fnv1a(t))]);",
        items,
        texts,
    )
    for text, (seed, order) in zip(texts, result, strict=True):
        assert seed == fnv1a32(text), text
        assert order == shuffled(items, seed), text


@pytest.fixture
def server(study):
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(study),
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_the_page_works_from_a_static_server(browser, server):
    start(browser, server, "carol")
    assert wait(browser, images_loaded)
    assert len(shown_options(browser)) == 1 + len(METHODS)
    press(browser, "1")
    wait(browser, lambda d: progress(d) == f"Group 2 of {len(KEYS)} \u00b7 1 answered")
    browser.refresh()
    wait(browser, lambda d: progress(d) == f"Group 2 of {len(KEYS)} \u00b7 1 answered")


# -- hostile strings: shown, never run -------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile(browser, tmp_path_factory, hermetic_kernel):
    """(report, study page folder, hostile strings): the Table V report over hostile votes."""
    root, strings = hostile_study(tmp_path_factory.mktemp("hostile"))
    return render_report(root, "votes", "hostile", n_boot=50), root / "study", strings


def assert_no_alert(driver) -> None:
    """No alert, confirm or prompt dialog is open (a payload that ran would have opened one)."""
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018


PLANTED = "document.querySelectorAll('iframe, svg, object, embed, [onerror], [onload]').length"


def test_the_report_of_hostile_votes_runs_no_injected_script(browser, hostile):
    report, _, strings = hostile
    browser.get(report.as_uri())
    wait(browser, lambda d: d.execute_script("return document.readyState;") == "complete")
    time.sleep(1)  # a broken image's onerror, an svg's onload fire right after the load
    assert_no_alert(browser)
    assert browser.execute_script(f"return {PLANTED};") == 0
    text = browser.find_element("tag name", "body").text
    for what, value in strings.items():
        assert value in text, what


def test_markup_in_the_title_and_the_participant_id_stays_text(browser, hostile):
    from selenium.webdriver.common.by import By

    _, page, _ = hostile
    start(browser, page.joinpath("index.html").as_uri(), HOSTILE_PARTICIPANT)
    assert_no_alert(browser)
    assert browser.find_element("id", "who").text == f"Participant: {HOSTILE_PARTICIPANT}"
    assert browser.find_element("id", "title").text == HOSTILE_TITLE
    assert browser.title == HOSTILE_TITLE
    browser.find_element("id", "switch").click()  # the start screen lists it as a button
    resume = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#resume-list button")]
    assert HOSTILE_PARTICIPANT in resume
    time.sleep(0.5)
    assert_no_alert(browser)
    assert browser.execute_script(f"return {PLANTED};") == 0
