#!/usr/bin/env bash
# Installs what xshim needs on a fresh Debian 12 machine: QEMU 10 from bookworm-backports
# (bookworm's 7.2 breaks the lab's dom0), the lab build tools, and the bare-metal Rust target.
# Idempotent: a second run only checks.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need_apt=0
for c in qemu-system-x86_64 debootstrap cpio readelf gzip gcc python3; do command -v "$c" >/dev/null || need_apt=1; done
[ -f /usr/include/xen/hvm/start_info.h ] || need_apt=1
if command -v qemu-system-x86_64 >/dev/null; then
  qemu-system-x86_64 --version | grep -q 'version 1[0-9]\.' || need_apt=1
fi
if [ "$need_apt" = 1 ]; then
  echo "setup: installing Debian packages (qemu-system-x86 from bookworm-backports, debootstrap, cpio, binutils, gcc, libxen-dev, python3)"
  src=/etc/apt/sources.list.d/bookworm-backports.sources
  if [ ! -f "$src" ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" | $SUDO tee "$src" >/dev/null
  fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -t bookworm-backports qemu-system-x86
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q debootstrap cpio binutils gzip xz-utils gcc libxen-dev python3
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-none; then
  echo "setup: rustup target add x86_64-unknown-none"
  rustup target add x86_64-unknown-none
fi
echo "setup: host ready ($(qemu-system-x86_64 --version | head -1))"
