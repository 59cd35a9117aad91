#!/usr/bin/env bash
# Installs the real syslog peers the interop tests and benchmarks run against, from Debian:
#   - rsyslog and rsyslog-gnutls, installed as packages (rsyslogd, run in the foreground by tests);
#   - syslog-ng, which conflicts with rsyslog, unpacked with dpkg -x into .peers/syslog-ng
#     (with the libraries it needs that are not on the machine), and run from there.
#   - util-linux's logger (package bsdutils), openssl, and redis-tools (redis-cli; the server binary
#     logtail's tests start privately, to kill and restart it).
# Idempotent: what is already there is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
export DEBIAN_FRONTEND=noninteractive

packages=()
command -v logger >/dev/null 2>&1 || packages+=(bsdutils)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
# redis-cli, and the server binary (as redis-check-rdb) that tests start on ports of their own;
# redis-tools runs no service.
command -v redis-cli >/dev/null 2>&1 || packages+=(redis-tools)
command -v rsyslogd >/dev/null 2>&1 || packages+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -n "$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null | head -1)" ] || packages+=(rsyslog-gnutls)
if ((${#packages[@]})); then
  echo "install-peers: apt-get install ${packages[*]}"
  $sudo_ apt-get update -qq
  # policy-rc.d-less containers would try to start rsyslog as a service; tests run their own.
  $sudo_ apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

root=.peers/syslog-ng/root
if [ ! -x "$root/usr/sbin/syslog-ng" ]; then
  echo "install-peers: unpacking syslog-ng into $root"
  mkdir -p .peers/syslog-ng/debs
  (cd .peers/syslog-ng/debs && apt-get download syslog-ng-core libivykis0 libnet1 libpcre3 >/dev/null 2>&1 || {
    $sudo_ apt-get update -qq && apt-get download syslog-ng-core libivykis0 libnet1 libpcre3 >/dev/null
  })
  for deb in .peers/syslog-ng/debs/*.deb; do dpkg -x "$deb" "$root"; done
fi
lib="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu:$root/usr/lib/syslog-ng"
if ! LD_LIBRARY_PATH="$lib" "$root/usr/sbin/syslog-ng" --version >/dev/null 2>&1; then
  echo "install-peers: syslog-ng in $root does not run:" >&2
  LD_LIBRARY_PATH="$lib" "$root/usr/sbin/syslog-ng" --version >&2 || true
  exit 1
fi
echo "install-peers: rsyslogd $(rsyslogd -v | head -1 | awk '{print $2}'), syslog-ng $(LD_LIBRARY_PATH="$lib" "$root/usr/sbin/syslog-ng" --version | head -1 | awk '{print $3}' | tr -d '()')"
