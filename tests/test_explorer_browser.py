"""The attention explorer in a real headless browser (Chromium driven by Selenium): load the static
page from disk, choose a layer and a head, hover a query token, and read back the weights the page
shows on every key; they must be the data's. Skipped, with the reason, where Selenium, Chromium or
chromedriver is missing (Debian: apt-get install chromium chromium-driver; pip: the dev extra)."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

LESSONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lessons")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no Chromium browser or chromedriver on this machine "
                    "(Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def explorer_page(tmp_path_factory):
    saved = dict(os.environ)
    sys.path.insert(0, LESSONS)
    try:
        import _common
    finally:
        sys.path.remove(LESSONS)
        os.environ.clear()
        os.environ.update(saved)
    out = tmp_path_factory.mktemp("explorer")
    lesson = _common.Lesson(99, "explorer in a browser", argv=["--out", str(out)])
    weights = np.random.default_rng(1).dirichlet(np.ones(5), size=(2, 3, 4))     # 2 layers, 3 heads, 4 x 5
    path = os.path.join(out, "attention_demo.html")
    lesson.attention_explorer("demo", ["q0", "q1", "q2", "q3"], ["k0", "k1", "k2", "k3", "k4"],
                                     weights, title="demo attention")
    with open(os.path.join(out, "attention_demo.json"), encoding="utf-8") as f:
        return path, np.array(json.load(f)["weights"])


def shown_weights(driver):
    keys = driver.find_elements("css selector", ".attn-keys .attn-k")
    return np.array([float(k.get_attribute("data-weight")) for k in keys]), [k.text for k in keys]


def test_choose_head_hover_token_shows_its_weights(browser, explorer_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    path, data = explorer_page
    browser.get("file://" + os.path.abspath(path))
    assert browser.find_element("css selector", ".attn-title").text == "demo attention"
    w, _ = shown_weights(browser)                           # before any choice: layer 1, head 0, query 0
    np.testing.assert_allclose(w, data[0, 0, 0], atol=1e-12)

    Select(browser.find_element("css selector", ".attn-layer")).select_by_visible_text("layer 2")
    Select(browser.find_element("css selector", ".attn-head")).select_by_visible_text("head 2")
    query = browser.find_elements("css selector", ".attn-queries .attn-q")[3]
    ActionChains(browser).move_to_element(query).perform()
    assert "attn-active" in query.get_attribute("class")
    w, texts = shown_weights(browser)
    np.testing.assert_allclose(w, data[1, 2, 3], atol=1e-12)
    assert [t.split()[-1] for t in texts] == [f"{v:.2f}" for v in data[1, 2, 3]]    # the printed labels
    best = int(np.argmax(data[1, 2, 3]))
    readout = browser.find_element("css selector", ".attn-readout").text
    assert f"looks most at \u201ck{best}\u201d" in readout and "layer 2, head 2" in readout

    ActionChains(browser).move_to_element(browser.find_elements("css selector", ".attn-q")[1]).perform()
    np.testing.assert_allclose(shown_weights(browser)[0], data[1, 2, 1], atol=1e-12)
    Select(browser.find_element("css selector", ".attn-head")).select_by_visible_text("mean of heads")
    np.testing.assert_allclose(shown_weights(browser)[0], data[1, :, 1].mean(axis=0), atol=1e-9)


TINY_LESSON = '''"""Lesson 98 - an explorer inside a notebook."""
# %%
import numpy as np
from _common import Lesson

lesson = Lesson(98, "explorer inside a notebook")
weights = np.random.default_rng(2).dirichlet(np.ones(3), size=(1, 2, 2))
lesson.attention_explorer("inline", ["a", "b"], ["x", "y", "z"], weights)
lesson.check("explorer written", True, "yes")
lesson.finish()
'''


def test_explorer_shown_by_a_notebook_works_in_its_book_page(browser, tmp_path):
    """The explorer a lesson displays in its kernel survives nbconvert: the book page runs it."""
    for module in ("jupytext", "nbclient", "nbconvert", "ipykernel"):
        pytest.importorskip(module, reason=f"{module} is missing: the book needs pip install -e '.[book]'")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    sys.path.insert(0, LESSONS)
    try:
        import build_book
    finally:
        sys.path.remove(LESSONS)
    source = tmp_path / "98_inline.py"
    source.write_text(TINY_LESSON, encoding="utf-8")
    nb = build_book.read_lesson(str(source))
    assert build_book.execute(nb, str(tmp_path / "out"), 0, "numpy", 120) == ("ran", "")
    page = tmp_path / "page.html"
    page.write_text(build_book.to_html(nb), encoding="utf-8")
    with open(tmp_path / "out" / "attention_inline.json", encoding="utf-8") as f:
        data = np.array(json.load(f)["weights"])
    browser.get("file://" + str(page))
    Select(browser.find_element("css selector", ".attn-head")).select_by_visible_text("head 1")
    ActionChains(browser).move_to_element(browser.find_elements("css selector", ".attn-q")[1]).perform()
    np.testing.assert_allclose(shown_weights(browser)[0], data[0, 1, 1], atol=1e-12)
