#!/usr/bin/env bash
# The Debian package (scripts/package-deb.sh, packaging/), built from $MINTGATE into a temp
# dir and checked without installing anything on this machine: lintian has no error, the
# systemd unit verifies and keeps its sandbox, the archive holds exactly the expected paths
# and modes, the maintainer scripts parse, and the packaged binary checks and runs the packaged
# configuration under MemoryDenyWriteExecute, notifying $NOTIFY_SOCKET as Type=notify needs
# and reopening its access log on SIGUSR1 after logrotate rotates it with the packaged rules.
# Env: MINTGATE = the mintgate binary, SOURCE_DIR = the source tree.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

: "${SOURCE_DIR:?set SOURCE_DIR to the source tree}"
for tool in dpkg-deb dpkg-shlibdeps lintian systemd-analyze readelf python3 curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install lintian systemd dpkg-dev binutils)"
done

# --- build it
deb=$(bash "$SOURCE_DIR/scripts/package-deb.sh" "$MINTGATE" "$work/out" 2>"$work/build.log") ||
  fail "package-deb.sh failed: $(cat "$work/build.log")"
arch=$(dpkg --print-architecture)
[[ $deb == "$work/out/mintgate_"*"_$arch.deb" && -f $deb ]] || fail "unexpected .deb path: $deb"
cmake_version=$(sed -n 's/^project(mintgate VERSION \([0-9.]*\).*/\1/p' "$SOURCE_DIR/CMakeLists.txt")
[[ $(dpkg-deb -f "$deb" Version) == "$cmake_version"-* ]] ||
  fail "package version $(dpkg-deb -f "$deb" Version) is not CMake's $cmake_version"
echo "built $(basename "$deb")"

# --- lintian: no error. Warnings are allowed but shown. (--tag-display-limit 0 is the current
# spelling of --no-tag-display-limit: every instance of every tag.)
lintian_rc=0
lintian --tag-display-limit 0 "$deb" >"$work/lintian.out" 2>"$work/lintian.err" || lintian_rc=$?
grep -E '^[EWIPXO]: ' "$work/lintian.out" | sed 's/^/lintian: /' || echo "lintian: no tags"
if grep -q '^E: ' "$work/lintian.out"; then fail "lintian reports errors (above)"; fi
((lintian_rc == 0)) || fail "lintian exited $lintian_rc: $(cat "$work/lintian.err")"
# Every override is a tag with the reason on the comment line above it, and shipped.
if [[ -f $SOURCE_DIR/packaging/lintian-overrides ]]; then
  awk '!/^#/ && NF && prev !~ /^#/ { print "override without a reason: " $0; bad = 1 }
       { prev = $0 } END { exit bad }' "$SOURCE_DIR/packaging/lintian-overrides" || fail "see above"
fi

# --- contents: exactly these files, owned by root, with these modes; nothing under /var
# (the postinst makes /var/lib/mintgate and /var/log/mintgate with their owner and mode).
expected="-rw-r--r-- root/root ./etc/logrotate.d/mintgate
-rw-r--r-- root/root ./etc/mintgate/mintgate.toml
-rw-r--r-- root/root ./lib/systemd/system/mintgate.service
-rwxr-xr-x root/root ./usr/bin/mintgate
-rw-r--r-- root/root ./usr/share/doc/mintgate/README.Debian
-rw-r--r-- root/root ./usr/share/doc/mintgate/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/mintgate/copyright
-rw-r--r-- root/root ./usr/share/man/man1/mintgate.1.gz"
if [[ -f $SOURCE_DIR/packaging/lintian-overrides ]]; then
  expected+=$'\n'"-rw-r--r-- root/root ./usr/share/lintian/overrides/mintgate"
fi
dpkg-deb --contents "$deb" >"$work/contents"
files=$(awk '$1 !~ /^d/ { print $1, $2, $6 }' "$work/contents" | LC_ALL=C sort)
[[ $files == "$(LC_ALL=C sort <<<"$expected")" ]] ||
  fail "package contents differ: $(diff <(LC_ALL=C sort <<<"$expected") <(echo "$files") || true)"
awk '$1 ~ /^d/ && ($1 != "drwxr-xr-x" || $2 != "root/root") { print; bad = 1 } END { exit bad }' \
  "$work/contents" || fail "directories not 0755 root (above)"
if grep -q ' \./var/' "$work/contents"; then fail "the package ships /var paths"; fi

# --- control: fields, conffiles, maintainer scripts
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == mintgate && $(field Architecture) == "$arch" ]] || fail "Package/Architecture"
[[ $(field Section) == net && $(field Priority) == optional ]] || fail "Section/Priority"
[[ -n $(field Maintainer) && -n $(field Description) ]] || fail "no Maintainer or Description"
# Depends: adduser, and the libraries dpkg-shlibdeps found (names without versions here).
depends=$(field Depends | tr ',' '\n' | sed 's/^ *//; s/[ (].*//')
for dep in adduser libc6 libssl3 libuv1 libc-ares2; do
  grep -qx "$dep" <<<"$depends" || fail "Depends lacks $dep: $(field Depends)"
done
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
[[ $(cat "$work/control/conffiles") == $'/etc/logrotate.d/mintgate\n/etc/mintgate/mintgate.toml' ]] ||
  fail "conffiles: $(cat "$work/control/conffiles")"
for script in postinst prerm postrm; do
  [[ $(stat -c %a "$work/control/$script") == 755 ]] || fail "$script is not 0755"
  sh -n "$work/control/$script" || fail "$script does not parse"
  if command -v shellcheck >/dev/null; then
    shellcheck -s sh "$work/control/$script" || fail "shellcheck: $script"
  fi
done
command -v shellcheck >/dev/null || echo "note: shellcheck not installed; maintainer scripts only parsed"
grep -q 'adduser --system --group --home /var/lib/mintgate --no-create-home' \
  "$work/control/postinst" || fail "postinst does not create the system user"
grep -q '#DEBHELPER#' "$work/control/postinst" "$work/control/prerm" "$work/control/postrm" &&
  fail "a maintainer script still has #DEBHELPER#"

# --- the files themselves
root=$work/root
dpkg-deb -x "$deb" "$root"
bin=$root/usr/bin/mintgate
readelf -S "$bin" | grep -q '\.symtab' && fail "usr/bin/mintgate is not stripped"
readelf -d "$bin" | grep -Eq '\((RPATH|RUNPATH)\)' && fail "usr/bin/mintgate has an RPATH/RUNPATH"
"$bin" --version >/dev/null || fail "the packaged binary does not run"
"$bin" run --help | grep -q -- '-c,--config' || fail "'mintgate run' has no -c option"
zcat "$root/usr/share/doc/mintgate/changelog.Debian.gz" | head -n 1 | grep -q "(${cmake_version}-" ||
  fail "changelog.Debian.gz does not start with $cmake_version"

# --- the unit. systemd-analyze verify checks that ExecStart's binary exists: it reads a copy
# whose ExecStart names the extracted binary (nothing is installed). It exits 0 on unknown
# or misspelt keys and values, which it only prints: any output fails.
unit=$root/lib/systemd/system/mintgate.service
has() { grep -qxF -- "$1" "$unit" || fail "mintgate.service lacks '$1'"; }
has "Type=notify"
has "ExecStart=/usr/bin/mintgate run -c /etc/mintgate/mintgate.toml"
# shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
has 'ExecReload=/bin/kill -HUP $MAINPID'
has "User=mintgate"
has "Group=mintgate"
has "CapabilityBoundingSet="
has "KillSignal=SIGTERM"
has "Restart=on-failure"
has "ReadWritePaths=/var/lib/mintgate /var/log/mintgate"
for key in NoNewPrivileges ProtectHome PrivateTmp PrivateDevices LockPersonality \
  MemoryDenyWriteExecute ProtectKernelTunables ProtectKernelModules ProtectControlGroups \
  RestrictNamespaces RestrictRealtime RestrictSUIDSGID; do
  has "$key=yes"
done
has "ProtectSystem=strict"
has "UMask=0077"
# getifaddrs(3), which tells the gateway its own addresses, needs netlink.
grep -Eq '^RestrictAddressFamilies=.*AF_NETLINK' "$unit" || fail "RestrictAddressFamilies without AF_NETLINK"
# The descriptors the default server.max_connections needs (two per connection, plus 256).
max_conn=$(sed -n 's/^max_connections = \([0-9]*\)$/\1/p' "$root/etc/mintgate/mintgate.toml")
nofile=$(sed -n 's/^LimitNOFILE=\([0-9]*\)$/\1/p' "$unit")
if [[ -z $max_conn || -z $nofile ]] || ((nofile < 2 * max_conn + 256)); then
  fail "LimitNOFILE=$nofile is below 2 * max_connections ($max_conn) + 256"
fi
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
if [[ -z $stop ]] || ((stop <= 10)); then fail "TimeoutStopSec=$stop does not cover the 10 s drain"; fi
mkdir "$work/unit"
sed "s|=/usr/bin/mintgate |=$bin |" "$unit" >"$work/unit/mintgate.service"
grep -qF "ExecStart=$bin run" "$work/unit/mintgate.service" || fail "ExecStart not redirected"
verify=$(cd "$work/unit" && systemd-analyze verify --man=no mintgate.service 2>&1) ||
  fail "systemd-analyze verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify: $verify"
# The sandbox as systemd rates it (0 best, 10 worst): fail when it loosens past 2.5.
security=$(cd "$work/unit" &&
  systemd-analyze security --offline=yes --threshold=25 mintgate.service 2>&1) ||
  fail "the unit's exposure rose above 2.5: $(tail -n 1 <<<"$security")"
echo "unit: $(grep -o 'Overall exposure level.*' <<<"$security")"

# --- the configuration as shipped. Its paths are the service's (/var/lib/mintgate, owned by
# mintgate): check and run a copy whose state_dir and access log point into $work instead,
# so that no root-owned folder is needed. Those two lines are the only ones changed.
conf=$root/etc/mintgate/mintgate.toml
grep -qx 'state_dir = "/var/lib/mintgate"' "$conf" || fail "state_dir is not /var/lib/mintgate"
grep -qx 'access = "/var/log/mintgate/access.log"' "$conf" || fail "access log not in /var/log/mintgate"
"$bin" check -c "$conf" >"$work/check.out" 2>&1 || {
  # Only where /var/lib/mintgate exists and this user may not read it.
  grep -q "/var/lib/mintgate" "$work/check.out" || fail "check of the shipped file: $(cat "$work/check.out")"
}
mkdir -m 0700 "$work/state"
mkdir "$work/log"
sed -e "s|^state_dir = \"/var/lib/mintgate\"$|state_dir = \"$work/state\"|" \
  -e "s|^access = \"/var/log/mintgate/access.log\"$|access = \"$work/log/access.log\"|" \
  "$conf" >"$work/mintgate.toml"
[[ $(diff "$conf" "$work/mintgate.toml" | grep -c '^>') == 2 ]] || fail "the sed changed other lines"
"$bin" check -c "$work/mintgate.toml" >"$work/check.out" 2>&1 ||
  fail "mintgate check of the packaged configuration: $(cat "$work/check.out")"
# It is conf/mintgate.toml (every key with its default) but for state_dir and the access log:
# a key or default changed there must be changed in packaging/mintgate.toml too.
settings() { grep -v -e '^#' -e '^$' "$1"; }
drift=$(diff <(settings "$SOURCE_DIR/conf/mintgate.toml" |
  sed -e 's|^state_dir = .*|state_dir = "/var/lib/mintgate"|' \
    -e 's|^access = "-"$|access = "/var/log/mintgate/access.log"|') <(settings "$conf")) ||
  fail "packaging/mintgate.toml has drifted from conf/mintgate.toml (< conf, > packaged): $drift"

# --- the packaged binary runs the packaged configuration (on free ports) under the kernel's
# MemoryDenyWriteExecute (PR_SET_MDWE, as strict as systemd's), mints a leaf and answers
# over TLS. It speaks systemd's notification protocol (Type=notify fails the start after
# TimeoutStartSec without READY=1): READY=1 when up, RELOADING=1 and READY=1 around a reload
# (ExecReload's SIGHUP), STOPPING=1 on SIGTERM; and after logrotate's rotation, SIGUSR1 (what
# its postrotate sends through systemctl) makes it write to a new access.log.
proxy=$(free_port)
admin=$(free_port)
sed -i -e "s|^listen = \\[\"127.0.0.1:3128\"\\]$|listen = [\"127.0.0.1:$proxy\"]|" \
  -e "s|^listen = \"127.0.0.1:9090\"$|listen = \"127.0.0.1:$admin\"|" -e 's/^workers = 0$/workers = 1/' \
  "$work/mintgate.toml"
cat >"$work/run.py" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3)
    print("note: no PR_SET_MDWE here; running without it", file=sys.stderr)
os.execv(sys.argv[1], sys.argv[1:])
PY
cat >"$work/notify.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
PY
python3 "$work/notify.py" "$work/notify.sock" "$work/notify.txt" &
pids+=($!)
for _ in $(seq 50); do [[ -S $work/notify.sock ]] && break; sleep 0.1; done
[[ -S $work/notify.sock ]] || fail "the notification socket did not appear"
NOTIFY_SOCKET=$work/notify.sock python3 "$work/run.py" "$bin" run -c "$work/mintgate.toml" \
  >"$work/gateway.log" 2>&1 &
gateway=$!
pids+=("$gateway")
wait_for_port "$proxy"
wait_for_port "$admin"
wait_for_line "$work/notify.txt" '^READY=1|STATUS=' -E || fail "no READY=1 on \$NOTIFY_SOCKET"
portal() {  # the portal over TLS through the gateway, with the CA it generated
  local code
  code=$(curl -s --max-time 10 --proxy "http://127.0.0.1:$proxy" --cacert "$work/state/ca/ca.pem" \
    -o /dev/null -w '%{http_code}' "https://mintgate.portal/$1") || true
  [[ $code == 200 ]] || fail "https://mintgate.portal/$1 through the packaged gateway: '$code'"
}
portal ""
wait_for_line "$work/log/access.log" '"url":"https://mintgate.portal/"' -F ||
  fail "no access-log line in $work/log/access.log"
[[ $(stat -c %a "$work/state/ca/ca.key") == 600 ]] || fail "the generated CA key is not 0600"

kill -HUP "$gateway"
wait_for_line "$work/gateway.log" "configuration reloaded" || fail "no reload on SIGHUP"
wait_for_line "$work/notify.txt" '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$' -E ||
  fail "no RELOADING=1 with MONOTONIC_USEC: $(cat "$work/notify.txt")"

if command -v logrotate >/dev/null; then
  # The packaged rules on a copy pointing at $work/log, rotating as this user instead of
  # mintgate (not created here), its postrotate naming a unit that does not exist (so that a
  # mintgate installed on this machine is left alone).
  sed -e "s|^/var/log/mintgate/|$work/log/|" -e "s|^    su mintgate mintgate$|    su $(id -un) $(id -gn)|" \
    -e "s|^    create 0600 mintgate mintgate$|    create 0600 $(id -un) $(id -gn)|" \
    -e 's|mintgate\.service|mintgate-e2e-absent.service|g' \
    "$root/etc/logrotate.d/mintgate" >"$work/logrotate.conf"
  [[ $(diff "$root/etc/logrotate.d/mintgate" "$work/logrotate.conf" | grep -c '^>') == 5 ]] ||
    fail "the logrotate rules changed shape"
  logrotate -f -s "$work/logrotate.state" "$work/logrotate.conf" >"$work/logrotate.out" 2>&1 ||
    fail "logrotate: $(cat "$work/logrotate.out")"
  [[ $(stat -c %a "$work/log/access.log") == 600 ]] || fail "the new access.log is not 0600"
else
  echo "note: logrotate not installed; rotating by hand"
  mv "$work/log/access.log" "$work/log/access.log.1"
fi
[[ -s $work/log/access.log.1 ]] || fail "access.log was not rotated"
grep -qF 'systemctl kill -s USR1 --kill-who=main mintgate.service' "$root/etc/logrotate.d/mintgate" ||
  fail "the logrotate rules do not send SIGUSR1 to the service"
kill -USR1 "$gateway"
sleep 0.3
portal "?after-rotation"
wait_for_line "$work/log/access.log" 'after-rotation' -F ||
  fail "after SIGUSR1 the gateway did not write to the new access.log"
grep -q 'after-rotation' "$work/log/access.log.1" && fail "the gateway kept writing the rotated file"

kill -TERM "$gateway"
rc=0
wait "$gateway" || rc=$?
((rc == 0)) || fail "the gateway exited $rc on SIGTERM: $(tail -n 5 "$work/gateway.log")"
wait_for_line "$work/notify.txt" '^STOPPING=1$' || fail "no STOPPING=1 on \$NOTIFY_SOCKET"
# In this order: ready, reloading, ready again, stopping.
sequence=$(sed -E 's/^(READY=1|RELOADING=1|STOPPING=1).*/\1/' "$work/notify.txt" | tr '\n' ' ')
[[ $sequence == "READY=1 RELOADING=1 READY=1 STOPPING=1 " ]] ||
  fail "notifications out of order: $(cat "$work/notify.txt")"
echo "notify: $(tr '\n' ' ' <"$work/notify.txt")"

echo "PASS: package"
