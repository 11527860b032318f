#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing:
#   flite, sox      speech synthesis for retrieval and evaluation tests
#   postgresql      the real PostgreSQL server the glossary store is tested against
set -euo pipefail

missing=()
command -v flite >/dev/null 2>&1 || missing+=(flite)
command -v sox >/dev/null 2>&1 || missing+=(sox)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)

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
