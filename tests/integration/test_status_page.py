#!/usr/bin/python3
"""integration.status_page: the status page in a real browser (Debian's chromium, driven by
chromedriver through python3-selenium, headless).

A PKI is made at test time (tests/integration/mkpki.sh, plus a self-signed certificate whose
subject is HTML with a script in it); one `openssl s_server` per case listens on 127.0.0.1
(valid, expiring in 20 and in 5 days, expired, self-signed, hostile subject; one port left
closed); `certmon run` watches them all and serves the page. The browser then checks what a
user would: every target listed in urgency order with the right days left, the summary bar,
the status, label and text filters (with and without JavaScript's instant filter), sorting by
a column, the detail page (chain, findings with their fix, validity bars), the badge, the
auto-refresh switch, that the hostile subject shows as text and runs nothing (no
window.__pwned, no alert, no CSP violation at all), and that every resource the pages load
comes from the daemon itself. Then the certificate history: a second daemon with a state
database watches an s_server that is restarted on the same port with a renewed certificate,
and its detail page must draw two bars on the SVG timeline, the renewed leaf highlighted,
dates on the axis, a table under it, readable colours in light and dark, no script and no
inline style. Screenshots go to OUTDIR (history.png, history-dark.png, target-history.png).

Usage: test_status_page.py CERTMON_BIN MKPKI_SH OUTDIR
Every process it starts is stopped by PID; the whole run is bounded by an alarm.
"""
import calendar
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import UnexpectedAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

HOSTILE_CN = '<script>window.__pwned=1</script>"><img src=x onerror=alert(1)>'
DAY = 86400
TOTAL_BUDGET_S = 170

failures = []
procs = []  # (name, Popen) of everything started, stopped by PID at the end


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(name, argv, **kw):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
    procs.append((name, p))
    return p


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def descendants(pid):
    """PIDs under pid (read from /proc), so that chromium's processes can be stopped by PID
    should chromedriver leave any behind."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop_all():
    for name, p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def http_get(base, path):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        return r.status, dict(r.headers), r.read()


def main():
    certmon, mkpki, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("test budget")))
    signal.alarm(TOTAL_BUDGET_S)
    tmp = tempfile.mkdtemp(prefix="certmon-page-")
    pki = os.path.join(tmp, "pki")
    t0 = time.monotonic()
    subprocess.run(["sh", mkpki, pki], check=True, stdout=subprocess.DEVNULL, timeout=60)
    # The hostile subject: self-signed, 45 days left, HTML in the CN.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "45",
                    "-keyout", os.path.join(pki, "hostile.key"), "-out",
                    os.path.join(pki, "hostile.pem"), "-subj",
                    "/CN=" + HOSTILE_CN.replace("/", "\\/"), "-addext",
                    "subjectAltName=DNS:<b>san</b>.example"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    print("pki made in %.1f s" % (time.monotonic() - t0))

    P = lambda n: os.path.join(pki, n)
    cases = {  # name: (cert, key, chain or None, labels)
        "valid": (P("valid.pem"), P("leaf.key"), P("inter.pem"), "web"),
        "expiring20": (P("expiring20.pem"), P("leaf.key"), P("inter.pem"), "web"),
        "expiring5": (P("expiring5.pem"), P("leaf.key"), P("inter.pem"), "db"),
        "expired": (P("expired.pem"), P("leaf.key"), P("inter.pem"), "db"),
        "self": (P("self.pem"), P("self.key"), None, "web"),
        "hostile": (P("hostile.pem"), P("hostile.key"), None, "web"),
    }
    ports = {}
    deadline = time.monotonic() + 15
    for name, (cert, key, chain, _) in cases.items():
        ports[name] = free_port()
        argv = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % ports[name], "-cert", cert,
                "-key", key, "-www", "-quiet", "-naccept", "1000"]
        if chain:
            argv += ["-cert_chain", chain]
        start("s_server " + name, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for name, port in ports.items():
        if not wait_port(port, deadline):
            raise RuntimeError("s_server for %s did not listen on %d" % (name, port))
    ports["down"] = free_port()  # nothing listens: probe.failed

    web_port = free_port()
    targets = []
    for name in list(cases) + ["down"]:
        team = cases[name][3] if name in cases else "db"
        targets.append('  { host = "127.0.0.1"; port = %d; name = "%s"; ca_file = "%s"; '
                       'labels = { team = "%s"; }; }' % (ports[name], name, P("root.pem"), team))
    conf = os.path.join(tmp, "certmon.conf")
    with open(conf, "w") as f:
        f.write('global = { interval = "1h"; timeout = "5s"; startup_spread = "0s"; '
                'retry_interval = "1h"; posture_interval = "off"; revocation = "off"; };\n'
                'metrics = { listen = [ "127.0.0.1:%d" ]; page_size = 10; };\n'
                "targets = (\n%s\n);\n" % (web_port, ",\n".join(targets)))
    log = open(os.path.join(outdir, "certmon.log"), "w")
    start("certmon", [certmon, "run", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % web_port
    if not wait_port(web_port, time.monotonic() + 10):
        raise RuntimeError("certmon did not listen on %d (see certmon.log)" % web_port)

    # Wait for every target's first result.
    reports = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, _, body = http_get(base, "/api/v1/targets")
        reports = {r["target"]: r for r in json.loads(body)}
        if len(reports) == 7:
            break
        time.sleep(0.2)
    check(len(reports) == 7, "all 7 targets probed (%d)" % len(reports))
    for n, r in sorted(reports.items()):
        print("     %-10s %-8s %s" % (n, r["status"], [f["id"] for f in r["findings"]]))

    def days_left(name):
        """Whole days to the earliest not_after of the chain, rounded down, as now."""
        chain = reports[name]["chain"]
        if not chain:
            return None
        na = min(calendar.timegm(time.strptime(c["not_after"], "%Y-%m-%dT%H:%M:%SZ"))
                 for c in chain)
        return math.floor((na - time.time()) / DAY)

    # The order users expect: status (critical, warning, unknown, ok), then time to expiry.
    rank = {"critical": 0, "warning": 1, "unknown": 2, "ok": 3}
    expected = sorted(reports, key=lambda n: (
        rank[reports[n]["status"]],
        days_left(n) is None,
        days_left(n) if days_left(n) is not None else 0, n))
    check(expected[:2] == ["expired", "expiring5"] and expected[-1] == "valid"
          and reports["expiring20"]["status"] == "warning",
          "the cases came out as designed: %s" % expected)

    # Headers of the page responses.
    status, headers, body = http_get(base, "/")
    csp = headers.get("Content-Security-Policy", "")
    check(status == 200 and "default-src 'none'" in csp and "script-src 'self'" in csp
          and "unsafe-inline" not in csp, "strict CSP on / (%s)" % csp)
    check(headers.get("X-Content-Type-Options") == "nosniff", "nosniff")
    check(headers.get("Referrer-Policy") == "no-referrer", "no-referrer")
    status, headers, body = http_get(base, "/badge/valid.svg")
    check(headers.get("Content-Type", "").startswith("image/svg+xml"), "badge is SVG")
    try:
        http_get(base, "/target/nope")
        check(False, "unknown target is 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "unknown target is 404")
    try:
        http_get(base, "/?status=bogus")
        check(False, "bad status is 400")
    except urllib.error.HTTPError as e:
        check(e.code == 400 and b"status=bogus" in e.read(), "bad status is 400, named")

    # ---- The browser ----
    profile = os.path.join(outdir, "chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--user-data-dir=" + profile, "--window-size=1400,1000",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    service = Service("/usr/bin/chromedriver", log_output=os.path.join(outdir, "chromedriver.log")) \
        if "log_output" in Service.__init__.__code__.co_varnames else \
        Service("/usr/bin/chromedriver", log_path=os.path.join(outdir, "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    procs.append(("chromedriver", driver.service.process))
    browser_pids = []
    try:
        driver.set_page_load_timeout(15)
        driver.set_script_timeout(5)
        # Instrumentation the page cannot see or block (CDP scripts bypass the CSP): count
        # alert() calls and CSP violations in every document.
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.__alerts = 0; window.__violations = [];
            window.alert = function () { window.__alerts++; };
            document.addEventListener('securitypolicyviolation',
                function (e) { window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });
        """})
        browser_pids = descendants(driver.service.process.pid)
        run_browser_checks(driver, base, reports, expected, days_left, outdir)
        run_history_checks(driver, certmon, pki, tmp, outdir)
    except UnexpectedAlertPresentException:
        check(False, "no alert dialog opened")
    finally:
        browser_pids = sorted(set(browser_pids + descendants(driver.service.process.pid)))
        try:
            driver.quit()
        except Exception as e:  # the browser may already be gone; its PIDs are killed below
            print("driver.quit: %s" % e)
        for pid in browser_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def navigate(driver, action):
    """Runs action (a click, an Enter) that loads another page, and waits until the new
    document has replaced the old one and finished loading: a click returns before that."""
    old = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, 10).until(EC.staleness_of(old))
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def visible_rows(driver):
    return [tr.find_element(By.CSS_SELECTOR, "th.c-name a").text
            for tr in driver.find_elements(By.CSS_SELECTOR, "#targets tbody tr")
            if tr.is_displayed()]


def assert_clean(driver, where):
    pwned = driver.execute_script("return typeof window.__pwned")
    alerts = driver.execute_script("return window.__alerts")
    violations = driver.execute_script("return window.__violations")
    check(pwned == "undefined", "%s: no script from a certificate ran (window.__pwned %s)"
          % (where, pwned))
    check(alerts == 0, "%s: no alert() (%s)" % (where, alerts))
    check(violations == [], "%s: no CSP violation at all (%s)" % (where, violations))
    origin = driver.execute_script("return location.origin")
    res = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in res if not u.startswith(origin + "/")]
    check(outside == [], "%s: %d resources, all from %s (outside: %s)"
          % (where, len(res), origin, outside))


def s_server(port, cert, chain):
    argv = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", cert, "-key",
            os.path.join(os.path.dirname(cert), "leaf.key"), "-cert_chain", chain, "-www",
            "-quiet", "-naccept", "1000"]
    return start("s_server " + os.path.basename(cert), argv, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)


def history_rows(base, name, want, deadline):
    """The target's history from the API once it has want rows (or at the deadline)."""
    rows = []
    while time.monotonic() < deadline:
        _, _, body = http_get(base, "/api/v1/targets/%s/history" % name)
        rows = json.loads(body)
        if len(rows) >= want:
            break
        time.sleep(0.2)
    return rows


def run_history_checks(driver, certmon, pki, tmp, outdir):
    """The certificate history on the detail page: a second daemon, with a state database,
    probes an s_server every second; the server is restarted on the same port with a renewed
    certificate (the same names and key, a later expiry), and the detail page then draws two
    bars, the current one highlighted, with no script."""
    P = lambda n: os.path.join(pki, n)
    port, web_port = free_port(), free_port()
    old = s_server(port, P("expiring5.pem"), P("inter.pem"))
    if not wait_port(port, time.monotonic() + 10):
        raise RuntimeError("s_server did not listen on %d" % port)
    conf = os.path.join(tmp, "history.conf")
    with open(conf, "w") as f:
        f.write('global = { interval = "1s"; retry_interval = "1s"; timeout = "5s"; '
                'startup_spread = "0s"; posture_interval = "off"; revocation = "off"; '
                'state_file = "%s"; };\n'
                'metrics = { listen = [ "127.0.0.1:%d" ]; };\n'
                'targets = ( { host = "127.0.0.1"; port = %d; name = "renewed"; '
                'ca_file = "%s"; } );\n' % (os.path.join(tmp, "state.db"), web_port, port,
                                             P("root.pem")))
    log = open(os.path.join(outdir, "certmon-history.log"), "w")
    start("certmon history", [certmon, "run", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % web_port
    if not wait_port(web_port, time.monotonic() + 10):
        raise RuntimeError("certmon did not listen on %d (see certmon-history.log)" % web_port)
    rows = history_rows(base, "renewed", 1, time.monotonic() + 15)
    check(len(rows) == 1, "the first leaf is in the history (%d rows)" % len(rows))
    # The renewal: the same port, a certificate with the same names and a later expiry.
    old.terminate()
    old.wait(timeout=5)
    s_server(port, P("expiring20.pem"), P("inter.pem"))
    if not wait_port(port, time.monotonic() + 10):
        raise RuntimeError("the renewed s_server did not listen on %d" % port)
    rows = history_rows(base, "renewed", 2, time.monotonic() + 15)
    check(len(rows) == 2, "the renewed leaf is in the history too (%d rows)" % len(rows))
    # The report that the page shows must be the renewed leaf's.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, _, body = http_get(base, "/api/v1/targets")
        leaf = (json.loads(body)[0]["chain"] or [{}])[0].get("sha256")
        if leaf == rows[0]["sha256"]:
            break
        time.sleep(0.2)
    check(leaf == rows[0]["sha256"], "the report shows the renewed leaf")

    driver.set_window_size(1400, 1000)
    driver.get(base + "/target/renewed?refresh=0")
    svg = driver.find_elements(By.CSS_SELECTOR, "svg.timeline")
    check(len(svg) == 1, "a timeline on the detail page")
    if not svg:
        return
    svg = svg[0]
    bars = driver.find_elements(By.CSS_SELECTOR, "svg.timeline g.tl-cert")
    check(len(bars) == 2, "two bars, one per leaf served (%d)" % len(bars))
    current = driver.find_elements(By.CSS_SELECTOR, "svg.timeline g.tl-current")
    tip = current[0].find_element(By.TAG_NAME, "title").get_attribute("textContent") \
        if current else ""
    check(len(current) == 1 and rows[0]["sha256"][:16] in tip and "(current)" in tip,
          "the renewed leaf is the highlighted one: %r" % tip)
    # Drawn where they belong: the renewed leaf served after the first, up to "now", and it
    # is valid longer.
    box = lambda el, sel: driver.execute_script(
        "var b = arguments[0].querySelector(arguments[1]).getBBox();"
        "return [b.x, b.x + b.width];", el, sel)
    new_served, old_served = box(bars[0], ".tl-served"), box(bars[1], ".tl-served")
    new_valid, old_valid = box(bars[0], ".tl-valid"), box(bars[1], ".tl-valid")
    now_x = float(driver.find_element(By.CSS_SELECTOR, "line.tl-now").get_attribute("x1"))
    check(old_served[0] <= new_served[0] and abs(new_served[1] - now_x) < 2
          and new_valid[1] > old_valid[1],
          "bars in place: served %s then %s, now at %.1f, valid until %s then %s"
          % (old_served, new_served, now_x, old_valid[1], new_valid[1]))
    check(svg.get_attribute("role") == "img" and
          driver.find_element(By.ID, "tl-desc").get_attribute("textContent").startswith(
              "2 certificates served since "),
          "role=img with a summary: %r" % driver.find_element(By.ID, "tl-desc")
          .get_attribute("textContent"))
    dates = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "svg.timeline text.tl-date")]
    check(len(dates) >= 2 and all(len(d) == 10 and d[4] == "-" for d in dates),
          "dates on the axis: %s" % dates)
    trs = driver.find_elements(By.CSS_SELECTOR, "table#history tbody tr")
    check(len(trs) == 2 and "(current)" in trs[0].text and rows[1]["sha256"] in trs[1].text,
          "the table under it lists both, newest first")
    check(driver.find_elements(By.CSS_SELECTOR, "[style]") == [], "no inline style on the page")
    assert_clean(driver, "/target/renewed")
    driver.save_screenshot(os.path.join(outdir, "target-history.png"))
    driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-history]").screenshot(
        os.path.join(outdir, "history.png"))
    # Dark and print: the dates take the palette's muted colour, never the default black.
    fill = lambda: driver.execute_script(
        "return getComputedStyle(document.querySelector('text.tl-date')).fill")
    light = fill()
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    dark = fill()
    driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-history]").screenshot(
        os.path.join(outdir, "history-dark.png"))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print", "features": []})
    shown = driver.execute_script(
        "return getComputedStyle(document.querySelector('svg.timeline')).display")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "", "features": []})
    check(light == "rgb(87, 96, 106)" and dark == "rgb(157, 167, 179)" and shown != "none",
          "axis dates readable in light (%s) and dark (%s), the timeline printed (%s)"
          % (light, dark, shown))


def run_browser_checks(driver, base, reports, expected, days_left, outdir):
    driver.get(base + "/")
    check(driver.title.startswith("Certificates"), "the page loads (%s)" % driver.title)
    rows = visible_rows(driver)
    check(rows == expected, "urgency order: %s" % rows)
    # Days left as the user reads them, for every target.
    for tr in driver.find_elements(By.CSS_SELECTOR, "#targets tbody tr"):
        name = tr.find_element(By.CSS_SELECTOR, "th.c-name a").text
        cell = tr.find_element(By.CSS_SELECTOR, "td.c-days")
        want = days_left(name)
        if want is None:
            check(cell.text == "\u2014", "%s: no days left shown (%r)" % (name, cell.text))
        elif want < 0:
            check(cell.text == "expired %d day%s ago" % (-want, "" if want == -1 else "s"),
                  "%s: %r (want expired %d days ago)" % (name, cell.text, -want))
        else:
            check(cell.text == "%d day%s" % (want, "" if want == 1 else "s"),
                  "%s: %r (want %d days)" % (name, cell.text, want))
        status = tr.find_element(By.CSS_SELECTOR, "td.c-status").text.lower()
        check(status == reports[name]["status"], "%s: status %s" % (name, status))
    # The colour of days left follows its band.
    cls = driver.find_element(By.XPATH, "//tr[th/a[text()='expiring5']]/td[contains(@class,"
                                        "'c-days')]").get_attribute("class")
    check("d-crit" in cls, "5 days left is coloured critical (%s)" % cls)
    # The summary bar.
    n = lambda i: driver.find_element(By.ID, i).text
    want_crit = sum(1 for r in reports.values() if r["status"] == "critical")
    check(n("count-all") == "7" and n("count-critical") == str(want_crit)
          and n("count-warning") == "1" and n("count-ok") == "1",
          "summary: all %s, critical %s, warning %s, ok %s" % (
              n("count-all"), n("count-critical"), n("count-warning"), n("count-ok")))
    check(n("count-week") == "1" and n("count-expired") == "1",
          "summary: %s expiring this week, %s expired" % (n("count-week"), n("count-expired")))
    # The hostile subject is text, exactly as the certificate has it.
    # (certmon writes subjects as RFC 4514 strings, with backslashes before < > and ".)
    subj = driver.find_element(By.XPATH, "//tr[th/a[text()='hostile']]/td[contains(@class,"
                                         "'c-subject')]").text
    want_subj = reports["hostile"]["chain"][0]["subject"]
    check(subj == want_subj and "window.__pwned=1" in subj and "<img src=x" in subj,
          "hostile subject rendered as text, as the report has it: %r" % subj)
    check(len(driver.find_elements(By.CSS_SELECTOR, "#targets img, #targets script")) == 0,
          "no element made from a certificate")
    assert_clean(driver, "/")
    driver.save_screenshot(os.path.join(outdir, "index.png"))

    # Filters without JavaScript's help: the form's GET.
    driver.find_element(By.CSS_SELECTOR, "input[name=status][value=critical]").click()
    navigate(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click)
    rows = visible_rows(driver)
    check("status=critical" in driver.current_url and
          rows == [n for n in expected if reports[n]["status"] == "critical"],
          "status filter: %s (%s)" % (rows, driver.current_url))
    driver.get(base + "/?status=warning&status=ok")
    rows = visible_rows(driver)
    check(rows == ["expiring20", "valid"], "repeated status=warning&status=ok: %s" % rows)
    driver.get(base + "/?label=" + urllib.parse.quote("team:db"))
    rows = visible_rows(driver)
    check(rows == [n for n in expected if n in ("expiring5", "expired", "down")],
          "label filter team:db: %s" % rows)
    driver.get(base + "/?q=expiring")
    rows = visible_rows(driver)
    check(rows == ["expiring5", "expiring20"], "text filter q=expiring: %s" % rows)
    # Instant filtering as one types (app.js), then the same through the server.
    driver.get(base + "/")
    box = driver.find_element(By.ID, "q")
    box.send_keys("expir")
    time.sleep(0.2)
    rows = visible_rows(driver)
    check(rows == ["expired", "expiring5", "expiring20"], "instant filter 'expir': %s" % rows)
    navigate(driver, lambda: box.send_keys("ing\n"))
    check("q=expiring" in driver.current_url and visible_rows(driver) == ["expiring5",
                                                                          "expiring20"],
          "search submitted: %s" % driver.current_url)
    # Sort by a column header.
    driver.get(base + "/")
    navigate(driver, driver.find_element(By.LINK_TEXT, "Target").click)
    rows = visible_rows(driver)
    check(rows == sorted(expected), "sorted by name: %s" % rows)
    navigate(driver, driver.find_element(By.PARTIAL_LINK_TEXT, "Target").click)
    rows = visible_rows(driver)
    check(rows == sorted(expected, reverse=True), "sorted by name, reversed: %s" % rows)
    # Auto-refresh on by default, and a link turns it off (no JavaScript needed).
    driver.get(base + "/")
    metas = driver.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]")
    check(len(metas) == 1, "auto-refresh is on by default")
    navigate(driver, driver.find_element(By.ID, "refresh-toggle").click)
    metas = driver.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]")
    check("refresh=0" in driver.current_url and not metas,
          "auto-refresh turned off: %s" % driver.current_url)
    navigate(driver, driver.find_element(By.LINK_TEXT, "Target").click)
    check("refresh=0" in driver.current_url, "sorting keeps it off: %s" % driver.current_url)

    # The detail page, reached by its link.
    driver.get(base + "/")
    navigate(driver, driver.find_element(By.LINK_TEXT, "expired").click)
    check(driver.current_url == base + "/target/expired", "detail link: %s" % driver.current_url)
    h1 = driver.find_element(By.TAG_NAME, "h1").text
    check(h1.startswith("expired") and "CRITICAL" in h1.upper(), "detail heading: %r" % h1)
    certs = driver.find_elements(By.CSS_SELECTOR, "ol.chain > li.cert")
    check(len(certs) == 2, "chain of 2 certificates listed (%d)" % len(certs))
    bars = driver.find_elements(By.CSS_SELECTOR, "svg.vbar")
    check(len(bars) == 2 and "100%" in bars[0].get_attribute("aria-label"),
          "validity bars, the leaf's used up (%s)" % [b.get_attribute("aria-label") for b in bars])
    ids = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "table.findings tbody th code")]
    check("cert.expired" in ids, "findings listed: %s" % ids)
    row = driver.find_element(By.XPATH, "//table[contains(@class,'findings')]//tr[th/code"
                                        "[text()='cert.expired']]")
    row.find_element(By.TAG_NAME, "summary").click()
    fix = row.find_element(By.CSS_SELECTOR, "p.fix").text
    check(fix.startswith("Fix: renew the certificate"), "the finding's fix shown: %r" % fix)
    phases = driver.find_element(By.CSS_SELECTOR, "table.phases").text
    check("Handshake" in phases and " ms" in phases, "probe phases shown")
    badge = driver.find_element(By.CSS_SELECTOR, "p.badge img")
    check(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                badge), "the badge image loads on the detail page")
    assert_clean(driver, "/target/expired")
    driver.save_screenshot(os.path.join(outdir, "target-expired.png"))

    driver.get(base + "/target/hostile")
    subj = driver.find_element(By.CSS_SELECTOR, "#cert-0 dd").text
    check(subj == reports["hostile"]["chain"][0]["subject"] and "<img src=x" in subj,
          "hostile subject on the detail page is text: %r" % subj)
    sans = driver.find_element(By.CSS_SELECTOR, "#cert-0 ul.sans").text
    check("<b>san</b>.example" in sans, "hostile SAN is text: %r" % sans)
    assert_clean(driver, "/target/hostile")
    driver.save_screenshot(os.path.join(outdir, "target-hostile.png"))

    # The badge on its own.
    driver.get(base + "/badge/valid.svg")
    text = driver.find_element(By.TAG_NAME, "svg").get_attribute("textContent")
    want = days_left("valid")
    check("%d days" % want in text, "badge says %d days: %r" % (want, text))
    driver.get(base + "/badge/expired.svg")
    text = driver.find_element(By.TAG_NAME, "svg").get_attribute("textContent")
    check("expired" in text, "expired badge: %r" % text)

    # A phone, dark mode, print.
    driver.get(base + "/")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    bg = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    check(bg == "rgb(13, 17, 23)", "dark colour scheme followed (%s)" % bg)
    driver.save_screenshot(os.path.join(outdir, "index-dark.png"))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.set_window_size(390, 844)
    driver.get(base + "/")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    check(width <= 400, "fits a phone's width (%d px)" % width)
    driver.save_screenshot(os.path.join(outdir, "index-phone.png"))
    driver.set_window_size(1400, 1000)
    # Keyboard: the first Tab reaches the skip link, and links are focusable.
    driver.get(base + "/")
    driver.find_element(By.TAG_NAME, "body").send_keys("\t")
    active = driver.execute_script("return document.activeElement.className")
    check(active == "skip", "the first Tab focuses the skip link (%s)" % active)


if __name__ == "__main__":
    started = time.monotonic()
    try:
        main()
        # A clean stop (under sanitizers: no leak, no error report makes it non-zero).
        for name, p in procs:
            if name.startswith("certmon"):
                p.terminate()
                rc = p.wait(timeout=20)
                check(rc == 0, "certmon stops cleanly on SIGTERM (exit %s)" % rc)
    except Exception as e:
        failures.append("%s: %s" % (type(e).__name__, e))
        print("FAIL %s: %s" % (type(e).__name__, e))
    finally:
        stop_all()
    print("%d failure(s) in %.1f s" % (len(failures), time.monotonic() - started))
    sys.exit(1 if failures else 0)
