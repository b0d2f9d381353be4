#!/usr/bin/env bash
# Builds the real-Xen lab from Debian's packages only, into a cache directory:
#   xen.elf (the hypervisor, unpacked for QEMU's multiboot loader), vmlinuz (dom0 and
#   linux-baseline kernel), dom0.cpio.gz (debootstrap'd dom0 with xen-utils), guest.cpio.gz
#   (a busybox guest for linux-baseline, with xen-blkfront and tools/lab/xdiskbench.c for
#   `bench disk`), versions.txt (the pinned package versions).
# Reused when its inputs (package versions + these scripts) are unchanged.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${XSHIM_LAB_CACHE:?XSHIM_LAB_CACHE must name the cache directory}
mkdir -p "$cache"
step() { echo "lab build: [$(date +%T)] $*"; }

kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
xpkg=xen-hypervisor-4.17-amd64
kver=${kpkg#linux-image-}
ver() { apt-cache policy "$1" | awk '/Candidate:/{print $2}'; }
# The hypervisor from bookworm main, the same release as the toolstack debootstrap installs
# (see below for why not bookworm-security's).
xver=$(apt-cache madison $xpkg | awk -F'|' '$3 ~ /bookworm\/main/ && $3 !~ /security/ {gsub(/ /, "", $2); print $2; exit}')
xver=${xver:-$(ver $xpkg)}
inputs="$kpkg=$(ver "$kpkg") $xpkg=$xver xen-utils-4.17=$(ver xen-utils-4.17) $(cat "$0" "$here/dom0-init.sh" "$here/xlab-agent.sh" "$here/linux-guest-init.sh" "$here/xdiskbench.c" "$here/udpecho.c" | sha256sum | cut -c1-16)"
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$inputs" ] && [ -f "$cache/dom0.cpio.gz" ]; then
  step "cached lab is current ($cache)"; cat "$cache/versions.txt"; exit 0
fi
step "building lab in $cache for: $inputs"
rm -rf "$cache/work"; mkdir -p "$cache/work/debs"
cd "$cache/work/debs"
cd ..
step "debootstrap dom0 root (bookworm, minbase + xen-utils-4.17), progress below"
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || echo http://deb.debian.org/debian)
debootstrap --variant=minbase \
  --include=xen-utils-4.17,xen-utils-common,xenstore-utils,busybox-static,kmod,iproute2,procps,iputils-ping,netcat-openbsd,libvirt-daemon,libvirt-daemon-driver-xen,libvirt-clients \
  bookworm rootfs "$mirror" 2>&1 | grep -E '^I: (Retriev|Install|Configur|Base)' | awk 'NR%40==1' || true
[ -x rootfs/usr/lib/xen-4.17/bin/xl ] || { echo "lab build: debootstrap did not install xl" >&2; exit 1; }
# Versions: debootstrap installs the toolstack from bookworm main (4.17.5 here), and the
# hypervisor comes from bookworm main too. bookworm-security's 4.17.7 is built without
# CONFIG_SHADOW_PAGING, and PV guests need shadow paging for log-dirty mode: `xl migrate` of
# any PV guest failed there ("Failed to enable logdirty: 95"). (Earlier trouble blamed on the
# 4.17.5 pair -- dom0 hangs and heap corruption -- was the XSAVE fault; see run-lab.sh.)
xsel="$xpkg=$xver"
step "downloading $kpkg and $xsel"
( cd debs && apt-get download -q "$kpkg" "$xsel" )
mkdir -p x
for d in debs/*.deb; do dpkg-deb -x "$d" x; done
grep -q '^CONFIG_SHADOW_PAGING=y' x/boot/xen-4.17-amd64.config 2>/dev/null \
  || echo "lab build: WARNING: this hypervisor has no shadow paging: PV guests cannot be migrated live"
zcat x/boot/xen-4.17-amd64.gz > "$cache/xen.elf.new"
cp x/boot/vmlinuz-"$kver" "$cache/vmlinuz.new"
step "dom0 modules for $kver"
mdir=rootfs/lib/modules/$kver; mkdir -p "$mdir"
# virtio: the control channel's virtio-serial port (virtio_console) on QEMU's PCI bus.
# netback and the bridge (with its stp and llc): the guests' network.
( cd x/lib/modules/"$kver" && find kernel/drivers/xen kernel/drivers/block/xen-blkback kernel/drivers/block/loop.ko \
    kernel/drivers/virtio kernel/drivers/char/virtio_console.ko \
    kernel/drivers/net/xen-netback kernel/net/bridge kernel/net/802 kernel/net/llc \
    -name '*.ko*' 2>/dev/null | cpio -pdm --quiet "$cache/work/$mdir" )
cp x/lib/modules/"$kver"/modules.{order,builtin} "$mdir"/ 2>/dev/null || true
chroot rootfs depmod "$kver"
# libvirt (the libvirt scenario) in a dom0 without systemd: its Xen (libxl) driver only.
# - The QEMU driver refuses to start without its user (libvirt-qemu) and takes libvirtd down
#   with it: dropped.
# - libvirt decodes the host CPU against its CPU models, and a PV dom0 does not see pse, vme,
#   pge or mtrr (Xen hides them), which every model lists: "x86Decode: Cannot find suitable
#   CPU model", and the libxl driver fails. A model with only fpu lets it decode.
rm -f rootfs/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so
cat > rootfs/usr/share/libvirt/cpu_map/x86_xshim-lab-dom0.xml <<'CPU'
<cpus>
  <model name='xshim-lab-dom0'>
    <decode host='on' guest='off'/>
    <feature name='fpu'/>
  </model>
</cpus>
CPU
sed -i "s|<include filename='x86_486.xml'/>|&\n    <include filename='x86_xshim-lab-dom0.xml'/>|" rootfs/usr/share/libvirt/cpu_map/index.xml
grep -q xshim-lab-dom0 rootfs/usr/share/libvirt/cpu_map/index.xml || { echo "lab build: could not add the CPU model to libvirt's cpu_map" >&2; exit 1; }
install -m 755 "$here/dom0-init.sh" rootfs/xlab-init
install -m 755 "$here/xlab-agent.sh" rootfs/xlab-agent
rm -rf rootfs/usr/share/{doc,man,locale,info} rootfs/var/cache/apt/* rootfs/var/lib/apt/lists/* rootfs/usr/lib/udev/hwdb.*
chroot rootfs dpkg-query -W -f '${Package}=${Version}\n' xen-utils-4.17 xen-hypervisor-common 2>/dev/null > versions.txt || true
echo "$kpkg=$(dpkg-deb -f debs/${kpkg}_*.deb Version)" >> versions.txt
echo "$xpkg=$(dpkg-deb -f debs/${xpkg}_*.deb Version)" >> versions.txt
step "packing dom0 initramfs"
( cd rootfs && find . | cpio -o -H newc --quiet | gzip -1 ) > "$cache/dom0.cpio.gz.new"
step "linux-baseline guest initramfs (busybox, xen-blkfront, xen-netfront, xdiskbench, udpecho)"
mkdir -p guest/bin guest/proc guest/dev guest/lib/modules
cp rootfs/bin/busybox guest/bin/busybox
# The disk bench's guest: Debian builds xen-blkfront as a module (uncompressed here for
# busybox's insmod); the bench itself is a static C program.
for m in $(find x/lib/modules/"$kver" -name 'xen-blkfront.ko*' -o -name 'xen-netfront.ko*'); do
  b=$(basename "$m"); b=${b%.xz}; b=${b%.zst}
  case "$m" in *.xz) xz -dc "$m" > guest/lib/modules/$b;; *.zst) zstd -dcq "$m" > guest/lib/modules/$b;; *) cp "$m" guest/lib/modules/;; esac
done
cc -static -O2 -o guest/bin/xdiskbench "$here/xdiskbench.c"
cc -static -O2 -o guest/bin/udpecho "$here/udpecho.c"
install -m 755 "$here/linux-guest-init.sh" guest/init
( cd guest && find . | cpio -o -H newc --quiet | gzip -1 ) > "$cache/guest.cpio.gz"
for f in xen.elf vmlinuz dom0.cpio.gz; do mv "$cache/$f.new" "$cache/$f"; done
mv versions.txt "$cache/versions.txt"
rm -rf "$cache/work"
echo "$inputs" > "$cache/stamp"
step "done: $(du -sh "$cache" | cut -f1) in $cache"
cat "$cache/versions.txt"
