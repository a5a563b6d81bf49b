#!/usr/bin/env python3
"""A small headless-Chromium driver for the end-to-end tests, over the DevTools protocol.

    with Browser() as b:
        b.goto(f"http://127.0.0.1:{port}/login")
        b.submit("form#login", {"user": "admin", "password": "secret"})
        rows = b.table("table#clients")
        b.viewport(390, 844, mobile=True); b.screenshot(f"{work}/login-390.png")

Chromium (Debian's package) runs headless with a fresh profile in a temporary directory, an
environment of its own (nothing from the caller's that adds trust or a proxy), and every
feature that would call a Google service switched off; host names other than localhost resolve
to nothing, so it only ever talks to loopback (or to the proxy given). One page, driven through
its target's WebSocket (websocket-client, Debian's python3-websocket): every command is matched
to its answer by id, events are queued, and every wait is bounded (15 s unless told).
Chromium's whole process group is killed and the directory removed on close(), at the end of
a `with` block (also on an exception), on SIGTERM/SIGHUP (turned into SystemExit while a
browser is open) and at interpreter exit; it is also killed if the thread that started it dies.

Run it with Debian's /usr/bin/python3 (websocket-client is not installed for other Pythons).
"""
import atexit
import base64
import collections
import ctypes
import json
import math
import os
import shutil
import signal
import struct
import tempfile
import threading
import time
import urllib.request
import weakref

try:
    import websocket  # websocket-client, Debian package python3-websocket
except ImportError as e:  # pragma: no cover - environment problem, said plainly
    raise ImportError("browser.py needs websocket-client: apt-get install python3-websocket, "
                      "and run it with /usr/bin/python3") from e

__all__ = ["Browser", "BrowserError", "BrowserTimeout"]

DEFAULT_TIMEOUT = 15.0
# The real binary: /usr/bin/chromium is a shell wrapper that sources /etc/chromium.d (Google
# API keys, extension flags) before running it.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium")

# Features that fetch from the network on their own, or change what a plain http:// URL does.
_DISABLED_FEATURES = ",".join([
    "AutofillServerCommunication", "CertificateTransparencyComponentUpdater",
    "DialMediaRouteProvider", "DnsOverHttps", "HttpsFirstBalancedModeAutoEnable",
    "HttpsUpgrades", "InterestFeedContentSuggestions", "MediaRouter",
    "NetworkTimeServiceQuerying", "OptimizationGuideModelDownloading", "OptimizationHints",
    "OptimizationHintsFetching", "OptimizationTargetPrediction", "PrivacySandboxSettings4",
    "SafeBrowsingBetterTelemetryForAll", "Translate",
])
# Profile preferences: no "DNS probe" to public resolvers after a failed lookup (it follows the
# alternate error pages setting), no prefetching, suggestions, Safe Browsing or translation.
_PREFERENCES = {
    "alternate_error_pages": {"enabled": False},
    "dns_prefetching": {"enabled": False},
    "net": {"network_prediction_options": 2},
    "safebrowsing": {"enabled": False},
    "search": {"suggest_enabled": False},
    "translate": {"enabled": False},
}
# Nothing resolves but loopback names and addresses (the rules apply to IP literals too), so
# Chromium cannot reach past this machine, whatever a page links to.
_RESOLVER_RULES = ("MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE *.localhost , EXCLUDE 127.* , "
                   "EXCLUDE ::1")


class BrowserError(Exception):
    """Chromium did something else than asked (or could not be driven)."""


class BrowserTimeout(BrowserError):
    """A bounded wait ran out."""


_open_browsers = weakref.WeakSet()
_handlers_installed = False


def _on_signal(signum, frame):
    # Unwinds `with Browser()` blocks (closing each browser); close_all() at exit does the rest.
    raise SystemExit(128 + signum)


def _install_signal_handlers():
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


@atexit.register
def close_all():
    for b in list(_open_browsers):
        b.close()


def _pdeathsig():
    # In the child before exec: SIGKILL when the starting thread dies (even by SIGKILL).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def png_size(path):
    """(width, height) of a PNG file; raises BrowserError when it is not one."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise BrowserError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


class Browser:
    """One headless Chromium with one page. Use as a context manager (or call close())."""

    def __init__(self, proxy=None, ignore_certificate_errors=False, timeout=DEFAULT_TIMEOUT,
                 home=None, env=None, extra_args=(), log=None, binary=None,
                 window=(1280, 800), hosts=None):
        """proxy: "http://127.0.0.1:PORT" for --proxy-server (loopback addresses still go
        direct unless extra_args has "--proxy-bypass-list=<-loopback>").
        home: HOME for Chromium (e.g. with a .pki/nssdb trusting a test CA); a fresh one
        otherwise. env: more environment variables. log: Chromium's stderr goes there
        (default: inside the temporary directory, removed on close). hosts: {name: address}
        that Chromium resolves so (e.g. {"console.lab.test": "127.0.0.1"}); every other name
        but localhost resolves to nothing."""
        self.timeout = timeout
        self.console = collections.deque(maxlen=500)  # (type, text) of console calls/errors
        self.dialogs = []  # messages of alert/confirm/prompt dialogs (all accepted)
        self.status = None  # HTTP status of the page's main document, after each navigation
        self._events = collections.deque(maxlen=20000)
        self._received = 0  # events read so far
        self._responses = {}
        self._ignored_ids = set()
        self._next_id = 0
        self._documents = {}  # loaderId -> (status, url) of main-frame documents
        self._failures = {}  # requestId (== loaderId for documents) -> errorText
        self._viewport = None
        self._ws = None
        self._proc = None
        self._closed = False
        self._dir = tempfile.mkdtemp(prefix="browser-py-")
        self.dir = self._dir  # the profile, HOME (unless given) and log live here
        _open_browsers.add(self)
        _install_signal_handlers()
        try:
            self._start(proxy, ignore_certificate_errors, home, env or {}, list(extra_args),
                        log or os.path.join(self._dir, "chromium.log"), binary, window,
                        hosts or {})
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self, proxy, insecure, home, env, extra_args, log, binary, window, hosts):
        import subprocess

        exe = binary or next((c for c in CHROMIUM_CANDIDATES if shutil.which(c)), None)
        if exe is None:
            raise BrowserError("no chromium binary (apt-get install chromium)")
        profile = os.path.join(self._dir, "profile")
        os.makedirs(os.path.join(profile, "Default"))
        with open(os.path.join(profile, "Default", "Preferences"), "w") as f:
            json.dump(_PREFERENCES, f)
        if home is None:
            home = os.path.join(self._dir, "home")
            os.makedirs(home)
        rules = "".join(f"MAP {name} {addr} , " for name, addr in hosts.items()) + _RESOLVER_RULES
        args = [
            exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            # Nothing fetched on Chromium's own initiative.
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
            "--disable-crash-reporter", "--metrics-recording-only", "--no-pings",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection",
            "--safebrowsing-disable-auto-update", "--disable-field-trial-config",
            "--no-service-autorun", "--disable-search-engine-choice-screen",
            f"--disable-features={_DISABLED_FEATURES}", f"--host-resolver-rules={rules}",
            # Predictable and not throttled.
            "--password-store=basic", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--mute-audio", "--force-color-profile=srgb", "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
            "--disable-hang-monitor", f"--window-size={window[0]},{window[1]}",
        ]
        if proxy:
            args.append(f"--proxy-server={proxy}")
        if insecure:
            args.append("--ignore-certificate-errors")
        args += extra_args
        args.append("about:blank")
        clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
                 "TMPDIR": self._dir}
        clean.update(env)
        self._log = log
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(args, env=clean, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=out, cwd=self._dir, start_new_session=True,
                                          preexec_fn=_pdeathsig)
        deadline = time.monotonic() + self.timeout
        port_file = os.path.join(profile, "DevToolsActivePort")
        port = None
        while port is None:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self._proc.returncode}: "
                                   f"{self._log_tail()}")
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0].strip().isdigit():
                    port = int(lines[0])
            except FileNotFoundError:
                pass
            if port is None:
                if time.monotonic() > deadline:
                    raise BrowserTimeout(f"chromium did not open its DevTools port within "
                                         f"{self.timeout:g} s: {self._log_tail()}")
                time.sleep(0.05)
        # The page target: never through a proxy from the caller's environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        page = None
        while page is None:
            try:
                with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = json.load(r)
                page = next((t for t in targets if t.get("type") == "page"), None)
            except OSError:
                pass
            if page is None:
                if time.monotonic() > deadline:
                    raise BrowserTimeout("chromium has no page target")
                time.sleep(0.05)
        self._ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True,
            http_no_proxy=["*"], enable_multithread=False)
        self.frame_id = page["id"]
        for domain in ("Page", "Runtime", "Network"):
            self._call(f"{domain}.enable")
        self._call("Page.setLifecycleEventsEnabled", {"enabled": True})
        self.frame_id = self._call("Page.getFrameTree")["frameTree"]["frame"]["id"]

    def _log_tail(self, lines=15):
        try:
            with open(self._log, errors="replace") as f:
                return "\n" + "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self):
        """Stops Chromium (its whole process group) and removes its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _open_browsers.discard(self)
        if self._ws is not None:
            try:
                self._ws.close(timeout=1)
            except Exception:
                pass
        if self._proc is not None:
            # The profile is thrown away: no need for a clean shutdown. SIGKILL to the group,
            # then to anything still running from this browser's directory (the crash
            # handlers run in sessions of their own), until nothing is left.
            pgid = self._proc.pid  # leader of its own session and group
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self._proc.wait(timeout=5)
            except Exception:
                pass
            end = time.monotonic() + 5
            while True:
                left = self._leftovers(pgid)
                if not left or time.monotonic() > end:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                time.sleep(0.02)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _leftovers(self, pgid):
        """Live (not zombie) processes of the group pgid or naming this browser's directory."""
        found = []
        mark = self._dir.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                fields = stat[stat.rindex(b")") + 2:].split()
                if fields[0] == b"Z":
                    continue
                if int(fields[2]) == pgid:
                    found.append(int(entry))
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if mark in f.read():
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
        return found

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- protocol ----------------------------------------------------------------------------

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _pump(self, deadline):
        """Reads one message (an answer is stored by id, an event queued); False on timeout."""
        if self._closed:
            raise BrowserError("the browser is closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._ws.settimeout(remaining)
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return False
        except (websocket.WebSocketException, OSError) as e:
            alive = self._proc.poll() is None
            state = "still runs" if alive else f"exited with {self._proc.returncode}"
            raise BrowserError(f"lost the DevTools connection ({e!r}); chromium {state}: "
                               f"{self._log_tail()}") from e
        msg = json.loads(raw)
        if "id" in msg:
            if msg["id"] in self._ignored_ids:
                self._ignored_ids.discard(msg["id"])
            else:
                self._responses[msg["id"]] = msg
        else:
            self._on_event(msg)
            self._received += 1
        return True

    def _send(self, method, params=None):
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params or {}}))
        return self._next_id

    def _call(self, method, params=None, timeout=None):
        """Sends a command and returns its result; BrowserError with the protocol's error."""
        deadline = self._deadline(timeout)
        mid = self._send(method, params)
        while mid not in self._responses:
            if not self._pump(deadline):
                self._ignored_ids.add(mid)
                raise BrowserTimeout(f"{method}: no answer within "
                                     f"{self.timeout if timeout is None else timeout:g} s")
        msg = self._responses.pop(mid)
        if "error" in msg:
            err = msg["error"]
            raise BrowserError(f"{method}: {err.get('message')} {err.get('data', '')}".strip())
        return msg.get("result", {})

    def _on_event(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Page.javascriptDialogOpening":
            # An open dialog blocks the page (and every navigation): accept it, note it.
            self.dialogs.append(p.get("message", ""))
            self._ignored_ids.add(self._send("Page.handleJavaScriptDialog", {"accept": True}))
        elif method == "Network.responseReceived" and p.get("type") == "Document":
            if p.get("frameId") == self.frame_id:
                resp = p.get("response", {})
                self._documents[p.get("loaderId")] = (resp.get("status"), resp.get("url"))
        elif method == "Network.loadingFailed" and p.get("type") == "Document":
            self._failures[p.get("requestId")] = p.get("errorText", "failed")
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            self.console.append((p.get("type"), text))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append(("exception", d.get("exception", {}).get("description")
                                 or d.get("text", "")))
        self._events.append(msg)

    def _wait_event(self, match, deadline, what):
        """Removes and returns the first queued (or coming) event for which match(msg)."""
        while True:
            for msg in self._events:
                if match(msg):
                    self._events.remove(msg)
                    return msg
            n = self._received
            while self._received == n:
                if not self._pump(deadline):
                    raise BrowserTimeout(f"{what}: timed out")

    def _main(self, msg, *methods):
        if msg.get("method") not in methods:
            return False
        p = msg["params"]
        fid = p["frame"]["id"] if "frame" in p else p.get("frameId")
        return fid == self.frame_id

    def _sync(self):
        # Events sent before this answer are read by now; drop them (older navigations).
        self._call("Runtime.evaluate", {"expression": "0"})
        self._events.clear()

    def _wait_load(self, loader_id, deadline, what):
        self._wait_event(lambda m: m.get("method") == "Page.lifecycleEvent"
                         and m["params"].get("name") == "load"
                         and m["params"].get("frameId") == self.frame_id
                         and m["params"].get("loaderId") == loader_id,
                         deadline, f"{what}: waiting for the load event")
        self.status = self._documents.get(loader_id, (None, None))[0]
        return self.url

    def _wait_navigation(self, deadline, what, must_start_by=None):
        """After an action that navigates: waits for the main frame's next document to load
        and returns its URL. With must_start_by (a monotonic time), returns None when no
        navigation started by then."""
        started = loading = False
        while True:
            wait_until = deadline if started or must_start_by is None else min(deadline,
                                                                               must_start_by)
            try:
                msg = self._wait_event(
                    lambda m: self._main(m, "Page.frameRequestedNavigation",
                                         "Page.frameStartedLoading", "Page.frameNavigated",
                                         "Page.navigatedWithinDocument",
                                         "Page.frameStoppedLoading"),
                    wait_until, what)
            except BrowserTimeout:
                if not started and must_start_by is not None and time.monotonic() < deadline:
                    return None
                raise BrowserTimeout(f"{what}: no new page within the time allowed "
                                     f"(now at {self.url})") from None
            method = msg["method"]
            if method == "Page.frameRequestedNavigation":
                started = True
            elif method == "Page.frameStartedLoading":
                started = loading = True
            elif method == "Page.navigatedWithinDocument":
                return msg["params"]["url"]
            elif method == "Page.frameStoppedLoading":
                # (Only after this navigation started loading: not the previous page's end.)
                if loading:
                    raise BrowserError(f"{what}: the navigation ended without a new page "
                                       f"(a 204 answer, a download, a cancelled submission?)")
            else:  # frameNavigated: the new document is committed
                frame = msg["params"]["frame"]
                if frame.get("unreachableUrl"):
                    err = self._failures.get(frame["loaderId"], "the page could not be loaded")
                    raise BrowserError(f"{what}: {frame['unreachableUrl']}: {err}")
                return self._wait_load(frame["loaderId"], deadline, what)

    # -- pages -------------------------------------------------------------------------------

    @property
    def url(self):
        """The page's current URL."""
        history = self._call("Page.getNavigationHistory")
        return history["entries"][history["currentIndex"]]["url"]

    def goto(self, url, timeout=None):
        """Navigates to url and waits for its load event; returns the final URL (after
        redirects). BrowserError when the page cannot be loaded (self.status holds the HTTP
        status otherwise: 4xx/5xx pages load)."""
        deadline = self._deadline(timeout)
        self._sync()
        res = self._call("Page.navigate", {"url": url}, timeout=timeout)
        if res.get("errorText"):
            raise BrowserError(f"goto {url}: {res['errorText']}")
        if not res.get("loaderId"):  # same-document navigation (a #fragment)
            return self.url
        return self._wait_load(res["loaderId"], deadline, f"goto {url}")

    def reload(self, timeout=None):
        """Reloads the page and waits for its load event; returns its URL."""
        deadline = self._deadline(timeout)
        self._sync()
        self._call("Page.reload", {"ignoreCache": True})
        return self._wait_navigation(deadline, "reload")

    def eval(self, js, timeout=None):
        """The value of the JavaScript expression js (promises awaited), as JSON-able Python
        data (None for undefined). BrowserError with the exception's text when it throws."""
        res = self._call("Runtime.evaluate", {"expression": js, "returnByValue": True,
                                              "awaitPromise": True, "userGesture": True},
                         timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            raise BrowserError(f"JavaScript error: {text}")
        return res.get("result", {}).get("value")

    def _fn(self, fn, *args, timeout=None):
        """Calls the JavaScript function source fn with JSON-encoded args."""
        return self.eval(f"({fn})({', '.join(json.dumps(a) for a in args)})", timeout=timeout)

    def html(self):
        """The page's DOM as HTML."""
        return self.eval("document.documentElement.outerHTML")

    def wait_for(self, selector, timeout=None):
        """Waits until selector matches an element (for pages that build themselves)."""
        deadline = self._deadline(timeout)
        while not self._fn("s => !!document.querySelector(s)", selector):
            if time.monotonic() > deadline:
                raise BrowserTimeout(f"nothing matches {selector!r} on {self.url}")
            time.sleep(0.05)

    def submit(self, form_selector, fields=None, button=None, navigation=True, timeout=None):
        """Fills the form's fields by name (text, hidden, textarea: the value; select: the
        option value, a list for a multiple select; checkbox: True/False or the value to
        check; radio: the value to check), submits it as a user would (requestSubmit(): its
        validation and submit handlers run; button: the selector of the submit button, whose
        name=value is sent), and waits for the next page to load (unless navigation is False:
        for a form handled by a script); returns its URL.
        BrowserError for a field the form does not have or a form that does not validate."""
        deadline = self._deadline(timeout)
        self._sync()
        problem = self._fn(r"""(sel, fields, button) => {
          const form = document.querySelector(sel);
          if (!form) return `no element matches ${sel}`;
          if (!(form instanceof HTMLFormElement)) return `${sel} is not a form`;
          for (const [name, value] of Object.entries(fields)) {
            const item = form.elements.namedItem(name);
            if (!item) return `the form has no field named ${name}`;
            const els = (item instanceof RadioNodeList) ? Array.from(item) : [item];
            for (const el of els) {
              if (el.type === 'checkbox' || el.type === 'radio') {
                const on = (typeof value === 'boolean') ? value
                         : (Array.isArray(value) ? value.map(String).includes(el.value)
                                                 : String(value) === el.value);
                if (el.type === 'checkbox' || on) el.checked = on;
              } else if (el instanceof HTMLSelectElement && el.multiple) {
                const want = (Array.isArray(value) ? value : [value]).map(String);
                for (const o of el.options) o.selected = want.includes(o.value);
              } else {
                el.value = (value === null || value === undefined) ? '' : String(value);
              }
              el.dispatchEvent(new Event('input', {bubbles: true}));
              el.dispatchEvent(new Event('change', {bubbles: true}));
            }
          }
          let submitter = null;
          if (button) {
            submitter = form.querySelector(button) || document.querySelector(button);
            if (!submitter) return `no element matches ${button}`;
          }
          if (!form.checkValidity()) {
            const bad = Array.from(form.elements).filter(e => e.willValidate && !e.validity.valid);
            return 'the form does not validate: ' +
                   bad.map(e => `${e.name || e.id}: ${e.validationMessage}`).join('; ');
          }
          if (form.requestSubmit) form.requestSubmit(submitter); else form.submit();
          return null;
        }""", form_selector, fields or {}, button)
        if problem:
            raise BrowserError(f"submit {form_selector}: {problem}")
        if not navigation:
            return self.url
        return self._wait_navigation(deadline, f"submit {form_selector}")

    def click(self, selector, navigation=None, timeout=None, settle=1.0):
        """Clicks the first element matching selector (element.click()). navigation: True
        waits for the page it opens to load (an error if none), False does not wait, None
        (default) waits when a navigation starts within settle seconds. Returns the URL."""
        deadline = self._deadline(timeout)
        self._sync()
        found = self._fn("s => { const e = document.querySelector(s); if (!e) return false; "
                         "e.click(); return true; }", selector)
        if not found:
            raise BrowserError(f"click: no element matches {selector!r}")
        if navigation is False:
            return self.url
        by = None if navigation else time.monotonic() + settle
        url = self._wait_navigation(deadline, f"click {selector}", must_start_by=by)
        return self.url if url is None else url

    # -- reading -----------------------------------------------------------------------------

    def text(self, selector):
        """innerText of the first element matching selector; BrowserError when none does."""
        value = self._fn("s => { const e = document.querySelector(s); "
                         "return e ? e.innerText : null; }", selector)
        if value is None:
            raise BrowserError(f"no element matches {selector!r} on {self.url}")
        return value

    def texts(self, selector):
        """innerText of every element matching selector (a list, maybe empty)."""
        return self._fn("s => Array.from(document.querySelectorAll(s), e => e.innerText)",
                        selector)

    def exists(self, selector):
        """Whether selector matches an element."""
        return self._fn("s => !!document.querySelector(s)", selector)

    def attr(self, selector, name):
        """The attribute name of the first element matching selector (None if absent)."""
        return self._fn("(s, n) => { const e = document.querySelector(s); "
                        "if (!e) throw new Error('no element matches ' + s); "
                        "return e.getAttribute(n); }", selector, name)

    def table(self, selector):
        """The rows of the table (or thead/tbody) matching selector, each a list of its cells'
        (th and td) trimmed texts, header rows included."""
        rows = self._fn(r"""s => {
          const t = document.querySelector(s);
          if (!t) return null;
          const rows = t.rows ? Array.from(t.rows) : Array.from(t.querySelectorAll('tr'));
          return rows.map(r => Array.from(r.cells, c => c.innerText.trim()));
        }""", selector)
        if rows is None:
            raise BrowserError(f"no element matches {selector!r} on {self.url}")
        return rows

    def cookies(self, urls=None):
        """The cookies for urls (default: the page's URL), as DevTools gives them: dicts with
        name, value, domain, path, expires, httpOnly, secure, session, sameSite ("Strict",
        "Lax", "None"; absent when the cookie did not say), ..."""
        params = {"urls": list(urls)} if urls else {}
        return self._call("Network.getCookies", params)["cookies"]

    # -- rendering ---------------------------------------------------------------------------

    def viewport(self, width, height, mobile=False, scale=1):
        """Emulates a screen of width x height CSS pixels (mobile: a phone's, which honors
        <meta name=viewport>) at scale device pixels per CSS pixel."""
        self._viewport = {"width": int(width), "height": int(height),
                          "deviceScaleFactor": scale, "mobile": bool(mobile)}
        self._call("Emulation.setDeviceMetricsOverride", self._viewport)
        self._call("Emulation.setTouchEmulationEnabled", {"enabled": bool(mobile)})

    def screenshot(self, path, full_page=True, timeout=None):
        """Saves a PNG of the page to path: the viewport's width, and the whole page's height
        when full_page (the viewport is made that tall for the capture). Returns (width,
        height) in pixels."""
        vp = self._viewport
        if vp is None:
            m = self._call("Page.getLayoutMetrics")["cssLayoutViewport"]
            vp = {"width": m["clientWidth"], "height": m["clientHeight"],
                  "deviceScaleFactor": 1, "mobile": False}
        tall = None
        if full_page:
            m = self._call("Page.getLayoutMetrics")
            height = math.ceil((m.get("cssContentSize") or m["contentSize"])["height"])
            height = min(height, 16384)
            if height > vp["height"]:
                tall = dict(vp, height=height)
        try:
            if tall:
                self._call("Emulation.setDeviceMetricsOverride", tall)
            data = self._call("Page.captureScreenshot", {"format": "png", "fromSurface": True},
                              timeout=timeout)["data"]
        finally:
            if tall:
                if self._viewport is None:
                    self._call("Emulation.clearDeviceMetricsOverride")
                else:
                    self._call("Emulation.setDeviceMetricsOverride", self._viewport)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return png_size(path)
