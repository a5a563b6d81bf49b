#!/usr/bin/env bash
# The headless-Chromium driver (browser.py) against a tiny admin console on loopback
# (browser_test_app.py): a login form that sets an HttpOnly, SameSite=Strict session cookie and
# answers 303, a table, a form with a hidden CSRF field posted for a result, a link followed
# by a click, screenshots at 1280 and 390 px (whole, valid PNGs of those widths), clear
# errors for a refused connection, an outside name and a JavaScript exception; then that
# Chromium is gone and its directory removed after the `with` block, on SIGTERM, and (the
# processes at least) when the driver is killed outright.
# It needs no gateway: lib.sh (which wants MINTGATE) is not sourced, its conventions are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3 # Debian's, with python3-websocket
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'rc=$?; echo "FAIL: line $LINENO of $(basename "$0") exited $rc" >&2; dump_logs' ERR
dump_logs() {
  for log in "$work"/*.log; do
    [[ -f $log ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
}
fail() {
  echo "FAIL: $*" >&2
  dump_logs
  exit 1
}

"$py" -c 'import websocket' 2>/dev/null || fail "python3-websocket is not installed"

"$py" "$here/browser_test_app.py" "$work/app.port" 2>"$work/app.log" &
pids+=($!)
for ((i = 0; i < 50; i++)); do
  [[ -s $work/app.port ]] && break
  sleep 0.1
done
[[ -s $work/app.port ]] || fail "the test app did not start"
port=$(cat "$work/app.port")

# The processes still running (not zombies) that name directory $1 in their command line.
left_running() {
  "$py" - "$1" <<'PY'
import os, sys
mark = sys.argv[1].encode()
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if mark in f.read():
                print(pid)
    except OSError:
        pass
PY
}
# Until nothing runs from directory $1, for up to 5 s.
wait_gone() {
  local i left
  for ((i = 0; i < 50; i++)); do
    left=$(left_running "$1")
    [[ -z $left ]] && return 0
    sleep 0.1
  done
  fail "still running from $1: $(echo "$left" | xargs -r ps -o pid,args -p | cut -c1-150)"
}

# Two drivers that hold a browser, started now (alongside the main one, to save time) and then
# stopped by SIGTERM and killed outright in the middle of their work: their Chromium stops
# (and, on SIGTERM, its directory is removed).
declare -A held=()
for sig in TERM KILL; do
  "$py" - "$here" "$work/held-$sig.dir" 2>"$work/held-$sig.log" <<'PY' &
import os, sys, time
sys.path.insert(0, sys.argv[1])
from browser import Browser
with Browser() as b:
    b.goto("about:blank")
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(b.dir)
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    time.sleep(60)
PY
  held[$sig]=$!
  pids+=("${held[$sig]}")
done

# The console, driven as a user would.
"$py" - "$here" "$port" "$work" >"$work/driver.out" 2>"$work/driver.log" <<'PY' ||
import os, socket, struct, sys, zlib
sys.path.insert(0, sys.argv[1])
from browser import Browser, BrowserError

port, work = sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"


def check(cond, what):
    if not cond:
        raise SystemExit(f"mismatch: {what}")
    print(f"ok: {what.split(':')[0]}", flush=True)


def raises(fn, words, what):
    try:
        fn()
    except BrowserError as e:
        check(all(w in str(e) for w in words), f"{what}: {e}")
        return
    raise SystemExit(f"mismatch: {what}: no error")


def png(path):
    """(width, height) of a PNG that is whole: every chunk's CRC, all the pixel rows."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: no PNG signature"
    pos, idat, head = 8, b"", None
    while True:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind}"
        if kind == b"IHDR":
            head = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, color = head
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    rows = zlib.decompress(idat)
    assert len(rows) == height * (1 + (width * channels * depth + 7) // 8), f"{path}: short"
    return width, height


with Browser(log=f"{work}/chromium.log") as b:
    print(b.dir, file=open(f"{work}/driver.dir", "w"))
    url = b.goto(f"{base}/clients")
    check(url == f"{base}/login", f"no session: redirected to the login page: {url}")

    url = b.submit("#login", {"user": "admin", "password": "wrong"})
    check((url, b.status, b.text("#error")) == (f"{base}/login", 401, "wrong user or password"),
          f"wrong password refused: {url} {b.status}")
    raises(lambda: b.submit("#login", {"user": "admin", "pasword": "s3cret"}),
           ["no field named pasword"], "a field the form lacks")
    raises(lambda: b.submit("#login", {"user": "admin"}), ["does not validate", "password"],
           "a required field left empty")

    url = b.submit("#login", {"user": "admin", "password": "s3cret"})
    check((url, b.status) == (f"{base}/clients", 200), f"login, 303 followed: {url} {b.status}")
    session = [c for c in b.cookies() if c["name"] == "session"]
    check(len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
          and session[0]["session"] and not session[0]["secure"],
          f"session cookie HttpOnly, SameSite=Strict: {session}")
    check("session" not in b.eval("document.cookie"), "the cookie is hidden from scripts")

    rows = b.table("#clients")
    check(rows == [["Client", "Status", "Requests"], ["10.0.0.7", "trusts", "12"],
                   ["10.0.0.9", "rejects", "3"], ["192.168.1.20", "unknown", "0"]],
          f"table read: {rows}")
    check(b.texts("#clients tbody td:nth-child(2)") == ["trusts", "rejects", "unknown"],
          "texts of a column")
    check(b.texts("#nothing") == [], "texts of nothing")
    raises(lambda: b.text("#nothing"), ["no element matches"], "text of nothing")
    csrf = b.attr("#block input[name=csrf]", "value")
    check(len(csrf) == 32, f"hidden csrf field read: {csrf}")

    url = b.click("#noop", settle=0.3)
    check((url, b.eval("document.title")) == (f"{base}/clients", "clicked"),
          f"a click that does not navigate: {url}")

    b.viewport(1280, 800)
    size = b.screenshot(f"{work}/clients-1280.png")
    check(png(f"{work}/clients-1280.png") == size and size[0] == 1280,
          f"1280 px screenshot: {size}")
    b.viewport(390, 844, mobile=True)
    check(b.eval("document.documentElement.scrollWidth") <= 390, "no overflow at 390 px")
    size = b.screenshot(f"{work}/clients-390.png")
    check(png(f"{work}/clients-390.png") == size and size[0] == 390 and size[1] >= 844,
          f"390 px screenshot: {size}")
    b.eval("document.body.insertAdjacentHTML('beforeend', '<div id=tall style=height:3000px>')")
    size = b.screenshot(f"{work}/tall-390.png")
    check(png(f"{work}/tall-390.png") == size and size[0] == 390 and size[1] > 3000
          and b.eval("[innerWidth, innerHeight]") == [390, 844],
          f"whole page taller than the screen, viewport restored: {size}")

    url = b.submit("#block", {"client": "10.0.0.9", "csrf": "0" * 32})
    check((url, b.status, b.text("#result")) == (f"{base}/clients/block", 403, "bad CSRF token"),
          f"a forged token refused: {url} {b.status}")
    b.goto(f"{base}/clients")
    url = b.submit("#block", {"client": "10.0.0.9", "reason": "test run", "notify": True})
    result = b.text("#result")
    check((url, b.status, result) == (f"{base}/clients/block", 200,
                                      "blocked 10.0.0.9 (test run), notified"),
          f"form posted with its token: {url} {b.status} {result}")
    size = b.screenshot(f"{work}/result-390.png", full_page=False)
    check(png(f"{work}/result-390.png") == size == (390, 844), f"viewport screenshot: {size}")

    b.goto(f"{base}/clients")
    url = b.click("#logout")
    check(url == f"{base}/login" and not any(c["name"] == "session" for c in b.cookies()),
          f"a link followed, signed out: {url}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    raises(lambda: b.goto(f"http://127.0.0.1:{closed}/"), ["ERR_CONNECTION_REFUSED"],
           "a refused connection")
    raises(lambda: b.goto("http://example.com/"), ["ERR_NAME_NOT_RESOLVED"],
           "an outside name is not resolved")
    raises(lambda: b.eval("null.x"), ["JavaScript error", "TypeError"], "a JavaScript error")
    check(b.eval("Promise.resolve({a: [1, 'x']})") == {"a": [1, "x"]}, "a promise's value")
print("done")
PY
  { cat "$work/driver.out"; fail "driver: $(tail -n 5 "$work/driver.log")"; }
cat "$work/driver.out"
grep -qx "done" "$work/driver.out" || fail "the driver stopped early"
dir=$(cat "$work/driver.dir")
wait_gone "$dir"
[[ ! -e $dir ]] || fail "$dir left behind"
echo "ok: chromium stopped and its directory removed after the with block"

for sig in TERM KILL; do
  for ((i = 0; i < 200; i++)); do
    [[ -s $work/held-$sig.dir ]] && break
    sleep 0.1
  done
  [[ -s $work/held-$sig.dir ]] || fail "the browser held for SIG$sig did not start"
  dir=$(cat "$work/held-$sig.dir")
  [[ -n $(left_running "$dir") ]] || fail "no chromium found for $dir"
  kill -"$sig" "${held[$sig]}"
  rc=0
  wait "${held[$sig]}" 2>/dev/null || rc=$? # (no "Killed" notice)
  [[ $sig == KILL ]] || ((rc == 143)) || fail "SIGTERM: the driver exited $rc"
  wait_gone "$dir"
  if [[ $sig == TERM ]]; then
    [[ ! -e $dir ]] || fail "SIGTERM: $dir left behind"
  fi
  rm -rf "$dir"
  echo "ok: chromium stopped when the driver got SIG$sig"
done

echo "PASS: the headless-Chromium driver"
