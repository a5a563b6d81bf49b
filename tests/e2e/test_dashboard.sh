#!/usr/bin/env bash
# The Grafana dashboard (conf/grafana/mintgate-dashboard.json, or $DASHBOARD) against a real
# scrape: a gateway serves decrypted and plain requests, a name that does not resolve and a
# client that rejects its CA (so that every family has samples, labelled ones included), then
# every metric name in every panel's PromQL must be a series of the scrape, exactly (a
# histogram's _bucket/_sum/_count only where the family is a histogram), with the labels and
# label values the expression selects and groups by. The JSON's structure is checked too
# (schemaVersion, the datasource and instance variables, unique panel ids, every panel's
# targets with an expression and a datasource). Finally a copy with misspelt names must fail,
# naming them: the check checks.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dashboard=${DASHBOARD:-${SOURCE_DIR:-$(dirname "$0")/../..}/conf/grafana/mintgate-dashboard.json}
[[ -f $dashboard ]] || fail "no dashboard at $dashboard"

start_tls_lab
echo "hello" >"$work/www/hello.txt"
"$MINTGATE" ca init --out "$work/ca" --name "Dashboard Test Root CA" >/dev/null
lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[log]
access = "$work/access.log"
[inspection]
default_ca = "main"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.main]
cert = "$work/ca/ca.pem"
key = "$work/ca/ca.key"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"

P=(--proxy "http://127.0.0.1:$proxy" -s -o /dev/null -w '%{http_code}' --max-time 10)
https_url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"
# Decrypted twice (a mint, then a cache hit), plain HTTP, a 404.
for _ in 1 2; do
  [[ $(curl "${P[@]}" --cacert "$work/ca/ca.pem" "$https_url") == 200 ]] || fail "decrypted request"
done
[[ $(curl "${P[@]}" "http://www.lab.test:$origin/hello.txt") == 200 ]] || fail "plain request"
[[ $(curl "${P[@]}" "http://www.lab.test:$origin/missing") == 404 ]] || fail "404 request"
# A name that does not resolve (dnsmasq: NXDOMAIN for *.invalid.test): 502, a DNS failure.
[[ $(curl "${P[@]}" "http://nothing.invalid.test:$origin/") == 502 ]] || fail "NXDOMAIN request"
# A client that does not trust the gateway's CA: a TLS alert (unknown_ca), a "rejects" verdict.
curl "${P[@]}" --cacert "$work/pki/ca.pem" "https://other.lab.test:$NGINX_TLS_PORT/" >/dev/null || true
sleep 0.3 # counters are gathered from the workers at each scrape; log lines every 20 ms
admin_curl "http://127.0.0.1:$admin/metrics" >"$work/metrics.txt"
grep -q '^mintgate_up 1' "$work/metrics.txt" || fail "no scrape: $(head -c 300 "$work/metrics.txt")"

cat >"$work/check_dashboard.py" <<'PY'
"""check_dashboard.py DASHBOARD.json SCRAPE.txt: every problem on a line, exit 1 if any."""
import json, re, sys

dash_path, scrape_path = sys.argv[1], sys.argv[2]
problems = []

# --- the scrape: every sample's name and labels, every family's type.
samples, types = {}, {}
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
for line in open(scrape_path):
    line = line.strip()
    if line.startswith("# TYPE "):
        _, _, family, kind = line.split(None, 3)
        types[family] = kind
    elif line and not line.startswith("#"):
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+", line)
        if not m:
            problems.append(f"scrape: cannot parse {line!r}")
            continue
        samples.setdefault(m.group(1), []).append(dict(label_re.findall(m.group(2) or "")))

def histogram_base(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return None

# --- PromQL, as far as a dashboard uses it.
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta",
    "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log2",
    "log10", "max_over_time", "min_over_time", "minute", "month", "predict_linear",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
    "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector", "year"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile"}
MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"bool", "and", "or", "unless", "offset", "atan2"}
TOKEN = re.compile(r'\s+|(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<range>\[[^\]]*\])'
                   r'|(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<id>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                   r'|(?P<brace>\{[^}]*\})|(?P<p>[-+*/%^(),<>=!]+)')
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')

def parse(expr):
    """(selectors [(name, [(label, op, value)])], functions, grouping labels) or raises."""
    tokens, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup:
            tokens.append((m.lastgroup, m.group(m.lastgroup)))
    selectors, functions, grouping = [], [], set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, None)
        if kind == "id" and text in MODIFIERS:
            if following[1] != "(":
                raise ValueError(f"{text} without its label list")
            j = i + 2
            while tokens[j][1] != ")":
                if tokens[j][0] == "id":
                    grouping.add(tokens[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "id" and (text in AGGREGATIONS or following[1] == "(" or
                             (following[1] or "").startswith("(")):
            if text not in AGGREGATIONS and text not in FUNCTIONS:
                raise ValueError(f"unknown function {text}()")
            functions.append(text)
        elif kind == "id" and text in KEYWORDS:
            pass
        elif kind == "id":
            matchers = []
            if following[0] == "brace":
                body, rest = following[1][1:-1], following[1][1:-1]
                while rest.strip():
                    m = MATCHER.match(rest)
                    if not m:
                        raise ValueError(f"cannot read the matchers {{{body}}}")
                    matchers.append(m.groups())
                    rest = rest[m.end():]
                i += 1
            selectors.append((text, matchers))
        elif kind == "brace":
            raise ValueError(f"a selector without a metric name: {text}")
        i += 1
    return selectors, functions, grouping

# --- the dashboard.
try:
    dash = json.load(open(dash_path))
except ValueError as e:
    print(f"FAIL: {dash_path} is not JSON: {e}")
    sys.exit(1)
if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
    problems.append(f"schemaVersion {dash.get('schemaVersion')!r}: 36 or later expected")
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds_refs = set()
if variables.get("datasource", {}).get("type") == "datasource":
    ds_refs |= {"${datasource}", "$datasource"}
for inp in dash.get("__inputs", []):
    if inp.get("type") == "datasource":
        ds_refs |= {"${%s}" % inp["name"], "$" + inp["name"]}
if not ds_refs:
    problems.append("no datasource variable or ${DS_...} input")
inst = variables.get("instance")
if not inst or "mintgate_" not in json.dumps(inst.get("query")) or not inst.get("multi"):
    problems.append("no multi-value `instance` variable querying a mintgate series")

def flatten(panels):
    for p in panels:
        yield p
        yield from flatten(p.get("panels", []))

panels = list(flatten(dash.get("panels", [])))
ids = [p.get("id") for p in panels]
for dup in sorted({i for i in ids if ids.count(i) > 1}, key=str):
    problems.append(f"panel id {dup!r} is used {ids.count(dup)} times")
if any(not isinstance(i, int) for i in ids):
    problems.append(f"panels without an integer id: {[p.get('title') for p in panels if not isinstance(p.get('id'), int)]}")

def ds_uid(ds):
    return ds.get("uid") if isinstance(ds, dict) else ds

names = set()
queried = 0
for p in panels:
    where = f"panel {p.get('id')} {p.get('title')!r}"
    g = p.get("gridPos", {})
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24:
        problems.append(f"{where}: gridPos {g}")
    if p.get("type") == "row":
        if p.get("targets"):
            problems.append(f"{where}: a row with targets")
        continue
    targets = p.get("targets") or []
    if not targets:
        problems.append(f"{where}: no targets")
    refids = [t.get("refId") for t in targets]
    if len(set(refids)) != len(refids) or None in refids:
        problems.append(f"{where}: refIds {refids}")
    for t in targets:
        expr = t.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            problems.append(f"{where}: a target without expr: {t}")
            continue
        if ds_uid(t.get("datasource") or p.get("datasource")) not in ds_refs:
            problems.append(f"{where}: {expr}: datasource {t.get('datasource') or p.get('datasource')} is not the dashboard's variable")
        try:
            selectors, functions, grouping = parse(expr)
        except (ValueError, IndexError) as e:
            problems.append(f"{where}: {expr}: {e}")
            continue
        queried += 1
        if not selectors:
            problems.append(f"{where}: {expr}: no metric")
        used_labels = {"instance", "job"}
        for name, matchers in selectors:
            names.add(name)
            if not name.startswith("mintgate_"):
                problems.append(f"{where}: {expr}: {name} is not a mintgate series")
            if name not in samples:
                if types.get(name) == "histogram":
                    why = f"is a histogram family: use {name}_bucket, _sum or _count"
                else:
                    why = "not in the scrape"
                problems.append(f"{where}: {expr}: metric {name} {why}")
                continue
            if "histogram_quantile" in functions and not (
                    name.endswith("_bucket") and histogram_base(name)):
                problems.append(f"{where}: {expr}: histogram_quantile over {name}, not a histogram's _bucket")
            series = samples[name]
            for s in series:
                used_labels |= set(s)
            if not any(l == "instance" and op == "=~" and v == "$instance" for l, op, v in matchers):
                problems.append(f"{where}: {expr}: {name} is not filtered by instance=~\"$instance\"")
            for label, op, value in matchers:
                if label in ("instance", "job"):
                    continue
                values = {s.get(label) for s in series} - {None}
                if not values:
                    problems.append(f"{where}: {expr}: {name} has no label {label!r} (scrape: {sorted(set().union(*map(set, series)))})")
                elif op == "=" and value not in values:
                    problems.append(f"{where}: {expr}: {name}{{{label}=\"{value}\"}} not in the scrape (values: {sorted(values)})")
                elif op == "=~" and not any(re.fullmatch(value, v) for v in values):
                    problems.append(f"{where}: {expr}: {label}=~\"{value}\" matches none of {sorted(values)}")
        if "histogram_quantile" in functions and "le" not in grouping:
            problems.append(f"{where}: {expr}: histogram_quantile without `by (le)`")
        for label in grouping - used_labels:
            problems.append(f"{where}: {expr}: groups by {label!r}, which none of its series has")
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat") or ""):
            if label not in grouping:
                problems.append(f"{where}: {expr}: legend {{{{{label}}}}} is not a label the expression keeps")

for p in problems:
    print("FAIL:", p)
print(f"{len(panels)} panels, {queried} expressions, {len(names)} series: "
      + ("ok" if not problems else f"{len(problems)} problems"))
sys.exit(1 if problems else 0)
PY

python3 "$work/check_dashboard.py" "$dashboard" "$work/metrics.txt" >"$work/check.out" ||
  fail "the dashboard does not match the gateway's /metrics:
$(cat "$work/check.out")"
cat "$work/check.out"

# The check itself: a misspelt counter, and a histogram's family name where a _bucket series
# belongs, must both be named.
sed -e '0,/mintgate_cert_cache_hits_total/s//mintgate_cert_cache_hit_total/' \
  -e '0,/mintgate_leaf_mint_seconds_bucket/s//mintgate_leaf_mint_seconds/' \
  "$dashboard" >"$work/misspelt.json"
if python3 "$work/check_dashboard.py" "$work/misspelt.json" "$work/metrics.txt" >"$work/misspelt.out"; then
  fail "a dashboard with misspelt names passed: $(cat "$work/misspelt.out")"
fi
grep -q "metric mintgate_cert_cache_hit_total not in the scrape" "$work/misspelt.out" ||
  fail "the misspelt counter was not named: $(cat "$work/misspelt.out")"
grep -q "metric mintgate_leaf_mint_seconds is a histogram family" "$work/misspelt.out" ||
  fail "the histogram family name was not refused: $(cat "$work/misspelt.out")"
echo "a misspelt copy fails: $(grep -c '^FAIL' "$work/misspelt.out") problems named"

echo "PASS: dashboard (every expression's series, labels and values are in the scrape)"
