#!/usr/bin/env bash
# A PNG of the first screen of a report (report.html of crm-mr run or crm-mr report), taken
# by headless Chromium: the README's screenshot and the browser test use it.
#
# Usage: report_screenshot.sh REPORT.html OUT.png [WIDTH HEIGHT]   (default 1280 900)
# Environment: CHROMIUM (default: chromium, then chromium-browser, on PATH).
# Exits 2 for bad arguments or a missing report or browser, 1 when Chromium fails.
set -euo pipefail

log() { printf 'report_screenshot: %s\n' "$*" >&2; }

if (($# < 2 || $# > 4)); then
  log "usage: report_screenshot.sh REPORT.html OUT.png [WIDTH HEIGHT]"
  exit 2
fi
report=$1 out=$2 width=${3:-1280} height=${4:-900}
[[ -f $report ]] || { log "no report at $report"; exit 2; }
[[ $width =~ ^[0-9]+$ && $height =~ ^[0-9]+$ ]] || { log "bad size ${width}x${height}"; exit 2; }
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[[ -n $browser ]] || { log "Chromium is not installed (Debian: apt-get install chromium)"; exit 2; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
if ! "$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$width,$height" --screenshot="$out" "$url" \
    >"$profile/log" 2>&1 || [[ ! -s $out ]]; then
  log "Chromium failed:"; tail -5 "$profile/log" >&2
  exit 1
fi
log "wrote $out"
