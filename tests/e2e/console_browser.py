#!/usr/bin/env python3
"""Drives the migration console and the portal in headless Chromium (tests/e2e/browser.py) for
test_console.sh: log in, read the rules table and readiness from the DOM, watch a readiness row
appear after a client's handshake, postpone a retire_at and stop a canary through the
confirmation pages, and save screenshots at 1280 and 390 px.

    console_browser.py ADMIN_PORT PROXY_PORT TOKEN_FILE ARTIFACT_DIR HANDSHAKE_COMMAND...

HANDSHAKE_COMMAND is run (by the shell) between two looks at the readiness section.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import Browser, png_size  # noqa: E402

admin, proxy, token_file, artifacts = sys.argv[1:5]
handshake = sys.argv[5]
base = f"http://127.0.0.1:{admin}"
token = open(token_file).read().splitlines()[0]
os.makedirs(artifacts, exist_ok=True)


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAIL: {what}")


def rows(b, selector):
    """Each row of a table as {data-*: value, cells: [...]}."""
    return b.eval(f"""[...document.querySelectorAll({json.dumps(selector)})].map(tr => ({{
        data: Object.assign({{}}, tr.dataset),
        cells: [...tr.cells].map(td => td.innerText.trim())}}))""")


def shots(b, name):
    for width, height, mobile in ((1280, 900, False), (390, 844, True)):
        b.viewport(width, height, mobile=mobile)
        path = os.path.join(artifacts, f"{name}-{width}.png")
        w, _ = b.screenshot(path)
        check(w == width, f"{path} is {w} px wide")
        # Nothing wider than the screen: tables scroll inside their own box.
        overflow = b.eval("document.documentElement.scrollWidth")
        check(overflow <= width + 1, f"{name} at {width} px is {overflow} px wide")
    b.viewport(1280, 900)


with Browser(log=os.path.join(artifacts, "chromium.log")) as b:
    # Anonymous: the console sends us to its login page; "/" leads there too.
    url = b.goto(base + "/")
    check(url.endswith("/console/login"), f"/ led to {url}")
    check(b.exists("form#login"), "no login form")
    b.submit("form#login", {"token": "not-the-token-at-all"})
    check(b.status == 401, f"a wrong token answered {b.status}")
    check("Wrong admin token" in b.text("#flash"), "no message for a wrong token")

    url = b.submit("form#login", {"token": token})
    check(url == base + "/console/", f"after login: {url}")
    cookie = [c for c in b.cookies() if c["name"] == "mintgate_console"]
    check(len(cookie) == 1, f"cookies: {b.cookies()}")
    check(cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict",
          f"session cookie flags: {cookie[0]}")
    check(b.eval("document.cookie") == "", "the session cookie is readable by scripts")

    # The rules, the default rule last, with their CA and status.
    rules = {r["data"]["rule"]: r for r in rows(b, "#rules-table tbody tr")}
    check(list(rules)[-1] == "default", f"rules: {list(rules)}")
    check(rules["default"]["data"]["status"] == "migrate", rules["default"])
    check(rules["default"]["cells"][2] == "legacy", rules["default"])
    check(rules["default"]["cells"][3] == "Console Legacy Root", rules["default"])
    check("new" in rules["default"]["cells"][6] and "2099-01-01" in rules["default"]["cells"][6],
          rules["default"])
    check(rules["already-new"]["data"]["status"] == "ok", rules["already-new"])
    check(rules["already-new"]["cells"][3] == "Console New Root", rules["already-new"])
    check(rules["banking"]["cells"][1] == "tunnel", rules["banking"])
    check("rule still needs migration" in b.text("#verdict")
          or "rules still need migration" in b.text("#verdict"), b.text("#verdict"))

    # Readiness: the canary client that lacks the new root rejected it, with the alert.
    new = {r["data"]["client"]: r for r in rows(b, '.readiness-profile[data-profile="new"] tr[data-client]')}
    check(new["127.0.0.2"]["data"]["status"] == "rejects", new)
    check(new["127.0.0.2"]["cells"][3] == "alert:unknown_ca", new["127.0.0.2"])
    check("127.0.0.3" not in new, "127.0.0.3 shown before its handshake")
    # The projection: both clients that use legacy would break at its retire_at.
    at_risk = {r["cells"][0]: r["cells"][2] for r in rows(b, '.projection[data-profile="legacy"] .at-risk tbody tr')}
    check(at_risk.get("127.0.0.2", "").startswith("rejects (alert:unknown_ca"), at_risk)
    check(at_risk.get("127.0.0.1") == "never connected with it", at_risk)
    check(b.exists('.readiness-profile[data-profile="legacy"] svg.chart'), "no readiness chart")
    canaries = rows(b, "#canaries tbody tr")
    check([c["data"]["canary"] for c in canaries] == ["new"], canaries)
    shots(b, "console")

    # A client's handshake, then the row is there.
    subprocess.run(handshake, shell=True, check=True)
    b.reload()
    new = {r["data"]["client"]: r for r in rows(b, '.readiness-profile[data-profile="new"] tr[data-client]')}
    check(new.get("127.0.0.3", {}).get("data", {}).get("status") == "trusts",
          f"no trusting row for 127.0.0.3 after its handshake: {new}")

    # A form without the session's CSRF token is refused, even from the console's own page.
    refused = b.eval("""fetch('/console/confirm', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: 'action=clear&profile=legacy'}).then(r => r.status)""")
    check(refused == 403, f"a form without the CSRF token answered {refused}")

    # Postpone the cutover: a confirmation page first, then the change is shown.
    b.submit('.profile[data-profile="legacy"] form:has(input[name=retire_at])',
             {"retire_at": "2099-06-01T00:00:00Z"})
    check("Postpone the cutover of legacy" in b.text("#confirm h2"), b.text("#confirm"))
    check("2099-01-01T00:00:00Z -> 2099-06-01T00:00:00Z" in b.text("#confirm"), b.text("#confirm"))
    shots(b, "confirm")
    url = b.click("#confirm-button", navigation=True)
    check(url.startswith(base + "/console/"), f"after the action: {url}")
    check("Done" in b.text("#flash") and "reloaded" in b.text("#flash"), b.text("#flash"))
    check("2099-06-01" in b.text('.profile[data-profile="legacy"] .retire'),
          b.text('.profile[data-profile="legacy"]'))
    rules = {r["data"]["rule"]: r for r in rows(b, "#rules-table tbody tr")}
    check("2099-06-01" in rules["default"]["cells"][6], rules["default"])
    check("ca.legacy.retire_at = 2099-06-01T00:00:00Z" in b.text("#overlay"), b.text("#overlay"))
    actions = rows(b, "#actions-table tbody tr")
    check(actions and actions[0]["cells"][1] == "console 127.0.0.1"
          and actions[0]["cells"][2] == "retire_at", actions)

    # Stop the canary.
    b.submit('#canaries tr[data-canary="new"] form', {})
    check("Stop the canary of new" in b.text("#confirm h2"), b.text("#confirm"))
    b.click("#confirm-button", navigation=True)
    check(not b.exists("#canaries"), "the canary is still listed after it was stopped")
    shots(b, "console-after")

    # Exports.
    csv = b.eval("fetch('/console/export/readiness.csv').then(r => r.text())")
    check(csv.startswith("profile,client,status,evidence") and "new,127.0.0.2,rejects,alert:unknown_ca" in csv,
          csv[:400])

    # Logged out: the console is closed again.
    b.submit("header form", {})
    check(b.goto(base + "/console/").endswith("/console/login"), "still logged in after logout")

# The portal, through the gateway as a browser configured with it sees it.
with Browser(proxy=f"http://127.0.0.1:{proxy}", log=os.path.join(artifacts, "chromium-portal.log")) as b:
    b.goto("http://mintgate.portal/")
    names = b.texts("section.ca h3")
    check(any("Console Legacy Root" in n for n in names) and any("Console New Root" in n for n in names),
          f"portal CAs: {names}")
    check(b.exists('a[href^="/install/"]'), "no install packages on the portal")
    shots(b, "portal")

print("console_browser: all checks passed")
