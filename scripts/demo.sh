#!/usr/bin/env bash
# The README's first command: run the daemon on the demo config (its action prints bans, the
# firewall is not touched), feed it the demo attack, show the bans, stop the daemon.
# Usage: scripts/demo.sh   (after npm run build; FAIL2TS=path overrides ./dist/fail2ts)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${FAIL2TS:-./dist/fail2ts}
demo=examples/demo
conf=$demo/fail2ts.toml
rm -rf "$demo/run"
: > "$demo/auth.log"
echo "== starting: $bin run -c $conf"
"$bin" run -c "$conf" 2> >(sed -u 's/^/   daemon | /' >&2) &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 200); do "$bin" ping -c "$conf" >/dev/null 2>&1 && break; sleep 0.05; done
echo "== attacking: $demo/attack.sh"
"$demo/attack.sh"
sleep 1
echo "== $bin status -c $conf"
"$bin" status -c "$conf"
echo "== stopping (the bans end after 30 s; they stay in the demo database meanwhile)"
"$bin" stop -c "$conf" >/dev/null
wait "$pid" 2>/dev/null || true
trap - EXIT
