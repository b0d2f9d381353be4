# Helpers for lab scenarios; sourced by the generated /xlab/test.sh inside dom0.
# Every check prints one line: XLAB-CHECK <name> <PASS|FAIL> <seconds> <detail...>
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
SAVE_DIR=/var/lib/xen-save
now() { cut -d' ' -f1 /proc/uptime; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
check() { echo "XLAB-CHECK $1 $2 $3 ${4:-}"; }
logs_of() { ls /var/log/xen/console/guest-"$1".log /var/log/xen/console/guest-"$1"--incoming.log 2>/dev/null; }
# The highest number N of lines "<WORD> N" in the guest's console logs (0 if none).
last_count() { cat $(logs_of "$1") 2>/dev/null | tr -d '\r' | grep -aoE "^$2 [0-9]+" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }'; }
# wait_count NAME WORD N SECONDS: until a "<WORD> n" line with n >= N appears.
wait_count() {
  i=0; lim=$(($4 * 5))
  while [ "$(last_count "$1" "$2")" -lt "$3" ]; do
    [ $i -ge $lim ] && return 1; sleep 0.2; i=$((i + 1))
  done
}
# wait_grep NAME REGEX SECONDS
wait_grep() {
  i=0; lim=$(($3 * 5))
  while ! cat $(logs_of "$1") 2>/dev/null | tr -d '\r' | grep -aqE "$2"; do
    [ $i -ge $lim ] && return 1; sleep 0.2; i=$((i + 1))
  done
}
exists() { xl domid "$1" >/dev/null 2>&1; }
# wait_gone NAME SECONDS
wait_gone() {
  i=0; lim=$(($2 * 5))
  while exists "$1"; do [ $i -ge $lim ] && return 1; sleep 0.2; i=$((i + 1)); done
}
# step CHECKNAME TIMEOUT COMMAND...: runs a toolstack command, reports PASS/FAIL with its time.
step() {
  name=$1; lim=$2; shift 2
  t0=$(now); timeout "$lim" "$@" > /tmp/step.out 2>&1; rc=$?; t1=$(now)
  if [ $rc -eq 0 ]; then check "$name" PASS "$(dt "$t0" "$t1")" "rc=0"
  else check "$name" FAIL "$(dt "$t0" "$t1")" "rc=$rc: $(tail -3 /tmp/step.out | tr '\n' ' ')"; fi
  return $rc
}
# progress NAME WORD SECONDS CHECKNAME: the guest keeps counting (a new line beyond the last).
progress() {
  before=$(last_count "$1" "$2"); t0=$(now)
  if wait_count "$1" "$2" $((before + 1)) "$3"; then check "$4" PASS "$(dt "$t0" "$(now)")" "$2 $before -> $(last_count "$1" "$2")"
  else check "$4" FAIL "$(dt "$t0" "$(now)")" "$2 stuck at $before"; return 1; fi
}
save_restore() { # NAME CHECKPREFIX WORD
  img=$SAVE_DIR/$1.img
  step "$2save" 180 xl save "$1" "$img" || return 1
  size=$(stat -c %s "$img" 2>/dev/null)
  echo "XLAB-INFO image_bytes=$size"
  step "$2restore" 180 xl restore "$img" || return 1
  rm -f "$img"
  progress "$1" "$3" 30 "$2continues"
}
checkpoint() { # NAME CHECKPREFIX WORD
  img=$SAVE_DIR/$1.ckpt
  step "$2checkpoint" 180 xl save -c "$1" "$img" || return 1
  rm -f "$img"
  exists "$1" && progress "$1" "$3" 30 "$2keeps-running"
}
migrate() { # NAME CHECKPREFIX WORD
  step "$2migrate" 240 xl migrate -s "" "$1" "xl migrate-receive" || return 1
  progress "$1" "$3" 30 "$2continues"
}
dump_logs() {
  for f in /var/log/xen/console/guest-*.log; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .log); n=${n#guest-}
    tr -d '\r' < "$f" | sed "s/^/XLAB-CON $n /"
  done
  xl dmesg 2>/dev/null | grep -E '\(d[0-9]+\)' | tail -80 | sed 's/^/XLAB-DMESG /'
}
