#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing:
#   flite, sox      speech synthesis for retrieval and evaluation tests (sox: time-stretch)
#   festival + festvox-us-slt-hts   the festival voice of `rasst data synth` (evaluation tests)
#   postgresql      the real PostgreSQL server the glossary store is tested against
#   redis-server    the real Redis of the multi-gateway tests (the shared event bus)
#   chromium        the real browser of the web page tests (driven by Playwright)
#   fonts-noto-cjk  so screenshots of Chinese/Japanese captions show glyphs
set -euo pipefail

missing=()
command -v flite >/dev/null 2>&1 || missing+=(flite)
command -v sox >/dev/null 2>&1 || missing+=(sox)
command -v text2wave >/dev/null 2>&1 || missing+=(festival)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || missing+=(festvox-us-slt-hts)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
