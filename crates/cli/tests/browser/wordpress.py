"""A person's first hour with a site made by `murakumo up`, in a real
Chromium (headless, driven by WebDriver): log in, publish a post in the
block editor, upload an image, comment as a visitor and approve it, change
the Home template, check permalinks, a category archive and Site Health.
Each step saves a screenshot; the anonymous side is checked with plain HTTP
(no cookies), as a visitor meets the page cache.

Usage: wordpress.py URL ADMIN_PASSWORD IMAGE SCREENSHOT_DIR
Prints one line per step with its duration; exits non-zero on the first
failure, naming the step.
"""

import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

URL, PASSWORD, IMAGE, SHOTS = sys.argv[1:5]
MARK = f"murakumo-{int(time.time())}"

# Site Health items that only say this machine has no internet.
OFFLINE_ONLY = (
    "wordpress.org",
    "dotorg",
    "background updates",  # replaced by murakumo's own item; listed in case
    "php version",  # it asks api.wordpress.org which versions are supported
)


def visitor(path):
    """A GET as an anonymous visitor: status and text."""
    req = urllib.request.Request(URL + path, headers={"User-Agent": "visitor"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 60)
steps = []


def step(name):
    def run(f):
        t = time.time()
        try:
            f()
        except Exception as e:
            driver.save_screenshot(f"{SHOTS}/{len(steps):02}-{name}-FAILED.png")
            print(f"FAILED {name}: {type(e).__name__}: {e}", flush=True)
            driver.quit()
            sys.exit(1)
        driver.save_screenshot(f"{SHOTS}/{len(steps):02}-{name}.png")
        steps.append(name)
        print(f"ok {name} ({time.time() - t:.1f}s)", flush=True)
    return run


def until(js, what):
    """Waits for a JavaScript expression to be true."""
    wait.until(lambda d: d.execute_script(f"try {{ return !!({js}); }} catch (e) {{ return false; }}"), what)


def site_errors():
    """Console errors caused by the site itself (not by missing internet)."""
    out = []
    for e in driver.get_log("browser"):
        if e["level"] != "SEVERE":
            continue
        msg = e["message"]
        if URL.split("//")[1] in msg or not any(h in msg for h in ("http://", "https://")):
            out.append(msg)
    return out


@step("login")
def _():
    driver.get(URL + "/wp-login.php")
    wait.until(EC.presence_of_element_located((By.ID, "user_login"))).send_keys("admin")
    driver.find_element(By.ID, "user_pass").send_keys(PASSWORD)
    driver.find_element(By.ID, "wp-submit").click()
    wait.until(EC.presence_of_element_located((By.ID, "wpadminbar")))
    assert "/wp-admin" in driver.current_url, driver.current_url


@step("dashboard-without-site-errors")
def _():
    driver.get(URL + "/wp-admin/")
    wait.until(EC.presence_of_element_located((By.ID, "dashboard-widgets")))
    time.sleep(1)
    errors = site_errors()
    assert not errors, errors


post = {}


@step("publish-in-block-editor")
def _():
    driver.get(URL + "/wp-admin/post-new.php")
    until("wp.data.select('core/editor').getCurrentPostId()", "the block editor")
    driver.execute_script(
        """
        const { dispatch } = wp.data;
        dispatch('core/editor').editPost({ title: arguments[0] });
        dispatch('core/block-editor').insertBlocks(
            wp.blocks.createBlock('core/paragraph', { content: 'Written in Chromium: ' + arguments[0] }));
        dispatch('core/editor').editPost({ status: 'publish' });
        dispatch('core/editor').savePost();
        """,
        MARK,
    )
    until("wp.data.select('core/editor').getCurrentPostAttribute('status') === 'publish'"
          " && !wp.data.select('core/editor').isSavingPost()", "the post published")
    post["link"] = driver.execute_script("return wp.data.select('core/editor').getCurrentPostAttribute('link')")
    post["path"] = "/" + post["link"].split("/", 3)[3]
    status, home = visitor("/")
    assert status == 200 and MARK in home, f"home page {status} without the new post"


@step("upload-image")
def _():
    driver.get(URL + "/wp-admin/media-new.php?browser-uploader")
    wait.until(EC.presence_of_element_located((By.ID, "async-upload"))).send_keys(IMAGE)
    driver.find_element(By.ID, "html-upload").click()
    wait.until(lambda d: "/wp-admin/upload.php" in d.current_url, "back in the media library")
    src = driver.execute_script(
        "return fetch('/wp-json/wp/v2/media?per_page=1', {headers: {'X-WP-Nonce': wpApiSettings.nonce}})"
        ".then(r => r.json()).then(m => m[0].source_url)"
    )
    path = "/" + src.split("/", 3)[3]
    req = urllib.request.Request(URL + path)
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and r.headers["content-type"] == "image/png", (r.status, r.headers["content-type"])
        assert r.read() == open(IMAGE, "rb").read(), "the edge serves the uploaded bytes"


@step("comment-as-visitor-and-approve")
def _():
    # A visitor's browser: a separate profile, no login cookie.
    guest = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        guest.get(URL + post["path"])
        WebDriverWait(guest, 60).until(EC.presence_of_element_located((By.ID, "comment")))
        guest.find_element(By.ID, "comment").send_keys("A visitor says hello " + MARK)
        guest.find_element(By.ID, "author").send_keys("Visitor")
        guest.find_element(By.ID, "email").send_keys(f"visitor-{MARK}@example.com")
        guest.find_element(By.ID, "submit").click()
        WebDriverWait(guest, 60).until(lambda d: "awaiting moderation" in d.page_source.lower())
    finally:
        guest.save_screenshot(f"{SHOTS}/{len(steps):02}-visitor.png")
        guest.quit()
    driver.get(URL + "/wp-admin/edit-comments.php?comment_status=moderated")
    approve = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "span.approve a")))
    driver.execute_script("arguments[0].click()", approve)
    # Approved by AJAX; WordPress says so.
    approved = """
        return fetch('/wp-admin/admin-ajax.php?action=rest-nonce').then(r => r.text())
            .then(nonce => fetch('/wp-json/wp/v2/comments?status=approve&search=' + arguments[0],
                                 {headers: {'X-WP-Nonce': nonce}}))
            .then(r => r.json()).then(c => c.length === 1);
    """
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(approved, MARK), "the comment approved")
    for _ in range(50):
        status, page = visitor(post["path"])
        if "A visitor says hello " + MARK in page:
            break
        time.sleep(0.2)
    assert status == 200 and "A visitor says hello " + MARK in page, "the approved comment is on the page"


@step("change-home-template-in-site-editor")
def _():
    driver.get(URL + "/wp-admin/site-editor.php?postType=wp_template&postId=twentytwentythree%2F%2Fhome")
    until("wp.data.select('core').getEntityRecord('postType', 'wp_template', 'twentytwentythree//home')",
          "the site editor with the Home template")
    driver.execute_script(
        """
        const id = 'twentytwentythree//home';
        const t = wp.data.select('core').getEditedEntityRecord('postType', 'wp_template', id);
        const content = typeof t.content === 'function' ? t.content(t) : t.content;
        wp.data.dispatch('core').editEntityRecord('postType', 'wp_template', id, {
            content: '<!-- wp:paragraph --><p>Home template changed ' + arguments[0] + '</p><!-- /wp:paragraph -->' + content });
        wp.data.dispatch('core').saveEditedEntityRecord('postType', 'wp_template', id);
        """,
        MARK,
    )
    until("!wp.data.select('core').isSavingEntityRecord('postType', 'wp_template', 'twentytwentythree//home')"
          " && !wp.data.select('core').hasEditsForEntityRecord('postType', 'wp_template', 'twentytwentythree//home')",
          "the template saved")
    status, home = visitor("/")
    assert status == 200 and "Home template changed " + MARK in home, "the home page shows the new template"


@step("permalinks-without-index-php")
def _():
    driver.get(URL + "/wp-admin/options-permalink.php")
    wait.until(EC.presence_of_element_located((By.ID, "permalink_structure")))
    page = driver.page_source
    assert "/index.php/" not in page and ".htaccess" not in page


@step("category-archive")
def _():
    # The theme shows no category on the post; WordPress says where its
    # archive is (the link a category widget or menu item would have).
    status, body = visitor("/wp-json/wp/v2/categories?slug=uncategorized")
    assert status == 200, status
    link = json.loads(body)[0]["link"]
    path = "/" + link.split("/", 3)[3]
    assert path == "/category/uncategorized/", path
    status, archive = visitor(path)
    assert status == 200 and MARK in archive, f"{path}: {status}"


@step("site-health")
def _():
    driver.get(URL + "/wp-admin/site-health.php")
    until("document.querySelector('.site-health-issues-wrapper') !== null"
          " && !document.querySelector('.site-status-has-issues.hide-if-js, .health-check-body .spinner.is-active')",
          "Site Health finished")
    time.sleep(3)  # the asynchronous tests
    critical = driver.execute_script(
        "return Array.from(document.querySelectorAll('#health-check-issues-critical .health-check-accordion-trigger .title'))"
        ".map(e => e.textContent.trim())"
    )
    caused_here = [c for c in critical if not any(w in c.lower() for w in OFFLINE_ONLY)]
    print("site health critical:", json.dumps(critical), flush=True)
    assert not caused_here, caused_here
    assert "WordPress core is updated by murakumo" in driver.page_source, "the core updates item"


driver.quit()
print(f"all {len(steps)} steps passed", flush=True)
