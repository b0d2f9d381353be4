#!/bin/busybox sh
# PID 1 of the linux-baseline guest: a console counter, one line a second.
/bin/busybox --install -s /bin
mount -t proc proc /proc
i=0
while true; do i=$((i+1)); echo "COUNTER $i"; sleep 1; done
