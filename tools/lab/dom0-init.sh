#!/bin/sh
# PID 1 of the lab's dom0: bring up the Xen toolstack, run the scenario in /xlab/test.sh,
# print its output on the serial console, then power off (minbase has no working poweroff).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
# What udev would add: Xen's hotplug scripts take their lock by `stat /dev/stdin` (locking.sh),
# and without /dev/stdin the `block` script spins until xl kills it ("unable to add disk").
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmp /run; mount -t tmpfs tmp /tmp
mkdir -p /var/lib/xen /var/lib/xen-save /var/log/xen/console /run/xen /run/xenstored /var/lib/xenstored
mount -t tmpfs tmp /var/lib/xen
# Save images are as large as the guest's memory: a separate tmpfs, not the root's.
mount -t tmpfs -o size=1100M save /var/lib/xen-save
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback bridge loop virtio_pci virtio_console; do
  modprobe $m 2>/dev/null || echo "XLAB: modprobe $m failed"
done
# The guests' network: a bridge with an address and no uplink (xl's vif-bridge script adds
# each vif to it); forwarding delay 0 so a new port passes frames at once.
ip link set lo up
ip link add xenbr0 type bridge stp_state 0 forward_delay 0 && ip addr add 10.99.0.1/16 dev xenbr0 && ip link set xenbr0 up \
  || echo "XLAB: bridge xenbr0 not set up"
mount -t xenfs xenfs /proc/xen || echo "XLAB: xenfs mount failed"
echo "XLAB: dom0 up at $(cut -d' ' -f1 /proc/uptime)s"
XENSTORED_ROOTDIR=/run/xenstored /usr/lib/xen-4.17/bin/xenstored --pid-file=/run/xenstored.pid
timeout 30 /usr/lib/xen-4.17/bin/xen-init-dom0 >/dev/null
/usr/lib/xen-4.17/bin/xenconsoled --log=guest --log-dir=/var/log/xen/console
echo "XLAB: toolstack up at $(cut -d' ' -f1 /proc/uptime)s"
# The control channel (tools/lab/xlab-agent.sh), when QEMU has the port.
ctl=
for d in /sys/class/virtio-ports/*; do
  [ "$(cat "$d/name" 2>/dev/null)" = xlab.ctl ] && ctl=/dev/${d##*/}
done
if [ -n "$ctl" ]; then
  # Restarted should it ever end (it ends only if the port cannot be opened).
  ( while :; do sh /xlab-agent "$ctl"; sleep 1; done ) &
  agent=$!
  echo "XLAB: control channel on $ctl"
fi
if [ -f /xlab/test.sh ]; then
  (cd /xlab && sh /xlab/test.sh) 2>&1
elif [ -n "$ctl" ]; then
  # `xshim lab up`: serve the host until it asks for poweroff.
  echo "XLAB: serving the control channel"
  wait "$agent"
fi
echo "XLAB: done at $(cut -d' ' -f1 /proc/uptime)s"
sync; /bin/busybox poweroff -f
