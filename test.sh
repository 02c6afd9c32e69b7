#!/usr/bin/env bash
# Runs the whole test suite. As root on Debian 12 it first installs the peers
# the tests drive (Postfix, Dovecot, PostgreSQL, swaks, python3, isync, dnsmasq, strace, NSD,
# python3-spf and python3-dkim, OpenDKIM, postsrsd, the Public Suffix List, Pigeonhole,
# sieve-connect, Roundcube with PHP, Chromium and Selenium, Prometheus, PostfixAdmin); the tests
# start private instances of them and never touch the system's services.
# Ends with one line: "tests: N passed, N failed[, N skipped]".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

packages=(systemd clang zlib1g-dev postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postgresql swaks python3 fail2ban isync dnsmasq-base strace nsd python3-spf python3-dkim python3-nacl publicsuffix opendkim postsrsd dovecot-sieve dovecot-managesieved sieve-connect)
# Roundcube (run by PHP's own web server) and headless Chromium, without what they only
# recommend (a system web server that would start on port 80).
web_packages=(roundcube-core roundcube-plugins roundcube-sqlite3 php-cli php-sqlite3 chromium chromium-driver python3-selenium)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=() missing_web=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  for p in "${web_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_web+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ] || [ "${#missing_web[@]}" -gt 0 ]; then
    echo "test.sh: installing ${missing[*]} ${missing_web[*]}"
    apt-get update -q
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" || { echo "test.sh: apt-get install failed"; exit 1; }
  fi
  if [ "${#missing_web[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_web[@]}" || { echo "test.sh: apt-get install failed"; exit 1; }
  fi
  # Prometheus (the metrics test) and PostfixAdmin with PHP's PostgreSQL driver (its web UI
  # test, run by PHP's own web server): their packages would start system services (Prometheus
  # on all interfaces, the web server PostfixAdmin pulls in), which a policy-rc.d denies for the
  # time of the install; PostfixAdmin is told not to set up a database of its own.
  missing_services=()
  for p in prometheus postfixadmin php-pgsql; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_services+=("$p")
  done
  if [ "${#missing_services[@]}" -gt 0 ]; then
    [ "${#missing[@]}" -gt 0 ] || [ "${#missing_web[@]}" -gt 0 ] || apt-get update -q
    echo "postfixadmin postfixadmin/dbconfig-install boolean false" | debconf-set-selections
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_services[@]}"
    installed=$?
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$installed" = 0 ] || { echo "test.sh: apt-get install failed"; exit 1; }
  fi
else
  echo "test.sh: not root: using the peers already installed (missing ones are skipped unless CI=true)"
fi

results="$root/build/test-results"
rm -rf "$results"
dotnet restore Mail.sln -v:q || { echo "tests: 0 passed, 1 failed"; exit 1; }
dotnet build Mail.sln -c Release --no-restore -v:q -nologo -clp:ErrorsOnly || { echo "tests: 0 passed, 1 failed"; exit 1; }
touch "$root/build/.built"
dotnet test Mail.sln -c Release --no-build --logger "trx;LogFileName=results.trx" --results-directory "$results" "$@"
status=$?

trx="$results/results.trx"
if [ ! -f "$trx" ]; then
  echo "test.sh: the test run produced no results"
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
# The fault suite's counts (acknowledged, delivered, duplicates, queued, lost per fault).
[ -f "$results/faults.txt" ] && sed 's/^/fault suite: /' "$results/faults.txt"
# The table of the sixteen mixes of our daemons with Postfix's and Dovecot's.
[ -f "$results/mixes.txt" ] && sed 's/^/mixes: /' "$results/mixes.txt"
counters=$(grep -o '<Counters [^>]*>' "$trx")
get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
total=$(get total); executed=$(get executed); passed=$(get passed); failed=$(get failed)
errors=$(get error); timeouts=$(get timeout); aborted=$(get aborted)
failed=$((failed + errors + timeouts + aborted))
skipped=$((total - executed))
if [ "$skipped" -gt 0 ]; then
  echo "tests: $passed passed, $failed failed, $skipped skipped"
else
  echo "tests: $passed passed, $failed failed"
fi
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$executed" -gt 0 ]
