#!/bin/busybox sh
# PID 1 of the linux-baseline guest: a console counter, one line a second.
/bin/busybox --install -s /bin
mount -t proc proc /proc
# `xl shutdown`: Linux's orderly poweroff runs /sbin/poweroff, which signals PID 1 (this
# shell) with USR2; power off for real then, as an init would.
trap 'echo "COUNTER poweroff"; poweroff -f' USR2 TERM
# `bench disk`: the disk measurements on xvda, then power off.
if grep -q 'xlab.bench=disk' /proc/cmdline; then
  mount -t devtmpfs dev /dev
  [ -f /lib/modules/xen-blkfront.ko ] && insmod /lib/modules/xen-blkfront.ko
  n=0; while [ ! -b /dev/xvda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
  /bin/xdiskbench /dev/xvda
  poweroff -f
fi
# `bench downtime`: an interface with the address xlab.ip=A.B.C.D (the kernel answers ping;
# tools/lab/udpecho.c is the UDP echo on port 7).
ip=$(sed -n 's/.*xlab\.ip=\([0-9.]*\).*/\1/p' /proc/cmdline)
if [ -n "$ip" ]; then
  mount -t devtmpfs dev /dev  # a job in the background reads /dev/null
  [ -f /lib/modules/xen-netfront.ko ] && insmod /lib/modules/xen-netfront.ko
  n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
  ip link set lo up; ip link set eth0 up; ip addr add "$ip/16" dev eth0
  /bin/udpecho &
  echo "NET up $ip"
fi
i=0
while true; do i=$((i+1)); echo "COUNTER $i"; sleep 1; done
