#!/usr/bin/env python3
"""A tiny admin console for test_browser_driver.sh, on 127.0.0.1 (port 0: the port it got is
written to PORT_FILE). GET /login shows a form; POST /login with admin/s3cret sets a session
cookie (HttpOnly; SameSite=Strict) and answers 303 to /clients, a table of clients and a form
(with a hidden csrf field, the session's token) that POSTs to /clients/block: 200 with the
result, or 403 for a wrong token. Without a session every page but /login answers 303 to it.
Usage: browser_test_app.py PORT_FILE"""
import html
import http.server
import os
import secrets
import sys
import urllib.parse

USER, PASSWORD = "admin", "s3cret"
CLIENTS = [("10.0.0.7", "trusts", "12"), ("10.0.0.9", "rejects", "3"),
           ("192.168.1.20", "unknown", "0")]
sessions = {}  # session id -> csrf token

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #888; padding: .3rem; text-align: left; }}
</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("app: " + (fmt % args) + "\n")

    def session(self):
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session" and value in sessions:
                return value
        return None

    def send(self, status, title, body, headers=()):
        data = PAGE.format(title=html.escape(title), body=body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location, headers=()):
        self.send_response(303)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def form(self):
        length = int(self.headers.get("Content-Length", "0"))
        return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

    def login_page(self, status=200, error=""):
        err = f'<p id="error">{html.escape(error)}</p>' if error else ""
        self.send(status, "Sign in", err + """
<form id="login" method="post" action="/login">
  <label>User <input name="user" required></label>
  <label>Password <input name="password" type="password" required></label>
  <button type="submit">Sign in</button>
</form>""")

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/login":
            return self.login_page()
        if path == "/favicon.ico":
            return self.send(404, "Not found", "")
        sid = self.session()
        if sid is None:
            return self.redirect("/login")
        if path == "/clients":
            rows = "".join(f"<tr><td>{a}</td><td>{s}</td><td>{n}</td></tr>" for a, s, n in CLIENTS)
            options = "".join(f'<option value="{a}">{a}</option>' for a, _, _ in CLIENTS)
            return self.send(200, "Clients", f"""
<table id="clients"><thead><tr><th>Client</th><th>Status</th><th>Requests</th></tr></thead>
<tbody>{rows}</tbody></table>
<form id="block" method="post" action="/clients/block">
  <input type="hidden" name="csrf" value="{sessions[sid]}">
  <label>Client <select name="client">{options}</select></label>
  <label>Reason <input name="reason"></label>
  <label><input type="checkbox" name="notify" value="yes"> notify</label>
  <button type="submit">Block</button>
</form>
<button id="noop" type="button" onclick="document.title = 'clicked'">Nothing</button>
<p><a id="logout" href="/logout">Sign out</a></p>""")
        if path == "/logout":
            del sessions[sid]
            return self.redirect("/login", [("Set-Cookie", "session=; Path=/; Max-Age=0")])
        self.send(404, "Not found", "<p>no such page</p>")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        fields = self.form()
        if path == "/login":
            if fields.get("user") != USER or fields.get("password") != PASSWORD:
                return self.login_page(401, "wrong user or password")
            sid = secrets.token_hex(16)
            sessions[sid] = secrets.token_hex(16)
            return self.redirect("/clients", [
                ("Set-Cookie", f"session={sid}; Path=/; HttpOnly; SameSite=Strict")])
        sid = self.session()
        if sid is None:
            return self.redirect("/login")
        if path == "/clients/block":
            if not secrets.compare_digest(fields.get("csrf", ""), sessions[sid]):
                return self.send(403, "Forbidden", '<p id="result">bad CSRF token</p>')
            text = f"blocked {fields.get('client')} ({fields.get('reason', '')})"
            if fields.get("notify") == "yes":
                text += ", notified"
            return self.send(200, "Blocked", f'<p id="result">{html.escape(text)}</p>')
        self.send(404, "Not found", "<p>no such page</p>")


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A browser stopped in the middle of an exchange is no error of the app.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


server = Server(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{server.server_address[1]}\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
