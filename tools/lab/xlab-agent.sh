#!/bin/sh
# The lab's control channel, dom0's side: serves requests from the host on a virtio-serial
# port (QEMU's "xlab.ctl", a Unix socket on the host), one at a time, apart from the serial
# console's text. Requests are one line; data travels as base64 text of a stated length:
#   PING <id>                         -> PONG <id>
#   RUN <id> <seconds> <b64 command>  -> OUT <id> <exit code> <n>, then n bytes: base64 of the
#                                        command's stdout+stderr (sh -c, under `timeout`:
#                                        exit code 124 when the time limit killed it)
#   PUT <id> <b64 path> <n>, n bytes  -> OUT <id> <exit code> 0 (the file written)
#   GET <id> <b64 path>               -> OUT <id> <exit code> <n>, then n bytes: the file
# usage: xlab-agent.sh PORT_DEVICE
port=$1
work=/run/xlab-agent
mkdir -p "$work"
reply() { # id rc file-with-base64
  printf 'OUT %s %s %s\n' "$1" "$2" "$(stat -c %s "$3")" >&3
  cat "$3" >&3
}
# The host connects and disconnects at will: a read then ends (EOF), and the port is opened
# again. Until the host reconnects, reads end at once: wait a little between tries.
while :; do
exec 3<>"$port"
while IFS= read -r line <&3; do
  set -- $line
  case "$1" in
    PING) printf 'PONG %s\n' "$2" >&3 ;;
    RUN)
      echo "$4" | base64 -d > "$work/cmd" 2>/dev/null
      # fd 3 (the port) closed for the command: a daemon it starts must not keep the port.
      timeout -k 5 "$3" sh "$work/cmd" > "$work/out" 2>&1 < /dev/null 3>&-
      rc=$?
      base64 -w0 "$work/out" > "$work/out.b64"
      reply "$2" "$rc" "$work/out.b64" ;;
    PUT)
      path=$(echo "$3" | base64 -d)
      head -c "$4" <&3 | base64 -d > "$path"
      rc=$?
      : > "$work/empty"
      reply "$2" "$rc" "$work/empty" ;;
    GET)
      path=$(echo "$3" | base64 -d)
      base64 -w0 "$path" > "$work/get.b64" 2> "$work/get.err" 3>&-
      rc=$?
      reply "$2" "$rc" "$work/get.b64" ;;
    *) printf 'ERR unknown request\n' >&3 ;;
  esac
done
exec 3>&-
sleep 0.3
done
