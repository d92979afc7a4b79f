#!/bin/sh
# Feeds the demo daemon an attack: three addresses fail to log in over ssh, three times each.
# Usage: examples/demo/attack.sh [LOG]   (default: auth.log beside this script)
set -eu
LOG="${1:-$(dirname "$0")/auth.log}"
export LC_ALL=C
n=0
for ip in 203.0.113.7 198.51.100.23 2001:db8::bad; do
  for try in 1 2 3; do
    n=$((n + 1))
    printf '%s demo sshd[%d]: Failed password for root from %s port %d ssh2\n' \
      "$(date '+%b %e %H:%M:%S')" $((4000 + n)) "$ip" $((50000 + n)) >> "$LOG"
    echo "attack: failure $try from $ip"
    sleep 0.3
  done
done
echo "attack: done; see the bans above, or: fail2ts status -c $(dirname "$0")/fail2ts.toml"
