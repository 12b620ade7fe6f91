#!/usr/bin/env bash
# Debian packages the project needs on a fresh machine: swig and libpcsclite-dev to build pyscard;
# pcscd and the vsmartcard virtual reader for the card-reader tests (ARCHITECTURE.md, PC/SC);
# dbus-daemon for the agent's logind session test (a private bus); cups-daemon and cups-client
# for its print-job test (a private cupsd).
# Installs only what is missing; apt-get update runs once, only when something is missing.
set -euo pipefail
packages=(swig libpcsclite-dev pcscd vsmartcard-vpcd vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome
          chromium fonts-noto-cjk fonts-ipafont-gothic poppler-utils wrk dbus-daemon cups-daemon cups-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
