# Helpers for lab scenarios; sourced by the generated /xlab/test.sh inside dom0.
# Every check prints one line: XLAB-CHECK <name> <PASS|FAIL> <seconds> <detail...>
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
SAVE_DIR=/var/lib/xen-save
# A scenario's own scratch directory (its test.sh sets SID, the scenario's id, and T): scenarios
# may run side by side in one dom0 (see run_session), so nothing they write is shared.
T=${T:-/tmp}
now() { cut -d' ' -f1 /proc/uptime; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
check() { echo "XLAB-CHECK $1 $2 $3 ${4:-}"; }
# Always names at least one file: a tool with no file would read stdin and hang. Builtins
# only (no process): the wait loops below call it twice a second.
logs_of() {
  for _f in /var/log/xen/console/guest-"$1".log /var/log/xen/console/guest-"$1"--incoming.log; do [ -f "$_f" ] && echo "$_f"; done
  echo /dev/null
}
# count_lines NAME REGEX: lines matching REGEX in the guest's console logs.
count_lines() { grep -acE "$2" $(logs_of "$1") 2>/dev/null | awk -F: '{ s += $NF } END { print s + 0 }'; }
# The highest number N of lines "<WORD> N" in the guest's console logs (0 if none): one awk.
# WORD "-": any payload; the number of lines matching the regex $PROGRESS instead.
last_count() {
  if [ "$2" = - ]; then count_lines "$1" "$PROGRESS"; return; fi
  awk -v w="$2" '{ sub(/\r$/, "") } $1 == w && $2 ~ /^[0-9]+$/ { if ($2 + 0 > m) m = $2 + 0 } END { print m + 0 }' $(logs_of "$1") 2>/dev/null
}
# A line every 30 s of waiting, so that a long wait is not taken for a silent (hung) lab.
heartbeat() { [ $(($1 % 60)) -eq 59 ] && echo "XLAB-WAITING $2 $((($1 + 1) / 2)) s"; }
# Waits poll twice a second with one short process each: polling every 0.2 s with four
# processes (cat | tr | grep | awk) halved a compute payload's speed under TCG (894 vs 1,919
# iterations/s, measured).
POLL=0.5
# wait_count NAME WORD N SECONDS: until a "<WORD> n" line with n >= N appears.
# (Helpers use _-prefixed variables: sh has no locals, and scenarios loop with their own.)
wait_count() {
  _n=0; _lim=$(($4 * 2))
  while [ "$(last_count "$1" "$2")" -lt "$3" ]; do
    [ $_n -ge $_lim ] && return 1; sleep $POLL; heartbeat $_n "$1 for $2 >= $3"; _n=$((_n + 1))
  done
}
# wait_grep NAME REGEX SECONDS
wait_grep() {
  _n=0; _lim=$(($3 * 2))
  while ! grep -aqE "$2" $(logs_of "$1") 2>/dev/null; do
    [ $_n -ge $_lim ] && return 1; sleep $POLL; heartbeat $_n "$1 for /$2/"; _n=$((_n + 1))
  done
}
exists() { xl domid "$1" >/dev/null 2>&1; }
# wait_gone NAME SECONDS
wait_gone() {
  _n=0; _lim=$(($2 * 2))
  while exists "$1"; do [ $_n -ge $_lim ] && return 1; sleep $POLL; heartbeat $_n "$1 to go"; _n=$((_n + 1)); done
}
# step CHECKNAME TIMEOUT COMMAND...: runs a toolstack command, reports PASS/FAIL with its time.
step() {
  _name=$1; _lim=$2; shift 2
  _t0=$(now); timeout "$_lim" "$@" > $T/step.out 2>&1; _rc=$?; _t1=$(now)
  if [ $_rc -eq 0 ]; then check "$_name" PASS "$(dt "$_t0" "$_t1")" "rc=0"
  else check "$_name" FAIL "$(dt "$_t0" "$_t1")" "rc=$_rc: $(grep -E 'error|fail|Fail' $T/step.out | head -4 | tr '\n' ' ')"; fi
  return $_rc
}
# The guest's current domain id, kept for dump_logs (Xen's log names domains by id only).
note_domid() { xl domid "$1" >> $T/domids 2>/dev/null; }
# progress NAME WORD SECONDS CHECKNAME: the guest keeps counting (a new line beyond the last).
progress() {
  note_domid "$1"
  _before=$(last_count "$1" "$2"); _t0=$(now)
  case "$_before" in ''|*[!0-9]*) check "$4" FAIL 0 "could not read the console log (dom0 trouble)"; return 1;; esac
  if wait_count "$1" "$2" $((_before + 1)) "$3"; then check "$4" PASS "$(dt "$_t0" "$(now)")" "$2 $_before -> $(last_count "$1" "$2")"
  else check "$4" FAIL "$(dt "$_t0" "$(now)")" "$2 stuck at $_before"; return 1; fi
}
# Evidence for a failed toolstack operation: the guest's xenstore directory as dom0 sees it.
xs_dump() {
  _d=$(xl domid "$1" 2>/dev/null) || { echo "XLAB-INFO xenstore: no domain $1"; return; }
  xenstore-ls -fp /local/domain/"$_d" 2>&1 | head -40 | sed 's/^/XLAB-INFO xenstore: /'
}
# The journal payload's disk ($DISK_IMG), read by dom0 while no guest uses it (saved,
# destroyed): every record the guest acknowledged (its highest `JOURNAL ack`) must be there,
# intact (tools/lab/journal-check.py, written apart from the payload).
journal_acked() { awk '{ sub(/\r$/, "") } $1 == "JOURNAL" && $2 == "ack" && $3 ~ /^[0-9]+$/ { if ($3 + 0 > m) m = $3 + 0 } END { print m + 0 }' $(logs_of "$1") 2>/dev/null; }
journal_image() { # NAME CHECKNAME
  [ -n "${DISK_IMG:-}" ] && [ "$PAYLOAD" = journal ] || return 0
  _start=$(cat $(logs_of "$1") 2>/dev/null | grep -aoE 'JOURNAL start block_size [0-9]+ capacity [0-9]+ ring [0-9]+' | head -1)
  [ -n "$_start" ] || { check "$2" FAIL 0 "no JOURNAL start line on the console"; return 1; }
  _bs=$(echo "$_start" | awk '{ print $4 }'); _ring=$(echo "$_start" | awk '{ print $8 }')
  python3 /xlab/journal-check.py "$DISK_IMG" "$_bs" "$_ring" "$(journal_acked "$1")" "$2"
}
save_restore() { # NAME CHECKPREFIX WORD
  _img=$SAVE_DIR/$1.img
  step "$2save" 180 xl save "$1" "$_img" || { xs_dump "$1"; return 1; }
  journal_image "$1" "$2saved-disk" || return 1
  _size=$(stat -c %s "$_img" 2>/dev/null)
  echo "XLAB-INFO image_bytes=$_size guest=$1"
  # Once per run: the check reads the whole image, slow under TCG.
  if [ ! -f $T/verified ]; then
    touch $T/verified
    # Xen's own stream checker (it understands xl's header with -f xl).
    PYTHONPATH=/usr/lib/xen-4.17/lib/python step "$2verify-stream" 300 verify-stream-v2 -f xl -q -i "$_img"
  fi
  step "$2restore" 180 xl restore "$_img" || return 1
  rm -f "$_img"
  progress "$1" "$3" 30 "$2continues"
}
checkpoint() { # NAME CHECKPREFIX WORD
  _img=$SAVE_DIR/$1.ckpt
  step "$2checkpoint" 180 xl save -c "$1" "$_img" || { xs_dump "$1"; return 1; }
  rm -f "$_img"
  exists "$1" && progress "$1" "$3" 30 "$2keeps-running"
}
migrate() { # NAME CHECKPREFIX WORD
  step "$2migrate" 240 xl migrate -s "" "$1" "xl migrate-receive" || { xs_dump "$1"; return 1; }
  progress "$1" "$3" 30 "$2continues"
}
# console_stall NAME WORD SECONDS: the console backend stops reading for SECONDS; the guest
# must keep running and every line it wrote meanwhile must arrive afterwards (the ring holds
# them; the host-side continuity check then finds no gap).
console_stall() {
  _pid=$(pidof xenconsoled); _before=$(last_count "$1" "$2"); _t0=$(now)
  kill -STOP "$_pid"; sleep "$3"; kill -CONT "$_pid"
  _want=$((_before + $3 - 2))
  if wait_count "$1" "$2" "$_want" 10; then check console-stall PASS "$(dt "$_t0" "$(now)")" "backend stopped $3 s: $2 $_before -> $(last_count "$1" "$2") arrived after it"
  else check console-stall FAIL "$(dt "$_t0" "$(now)")" "backend stopped $3 s: $2 $_before -> $(last_count "$1" "$2"), want >= $_want"; return 1; fi
}
# console_stalled_save NAME WORD: xl save while the console backend reads nothing, then xl
# restore. The suspend gives the backend 0.1 s, not 5, takes what it left unread back out of
# the ring and writes it into the new domain's (left there, the old backend reads it from the
# dead domain's page and PV's kept page shows it to the new one as well). The lines written
# while it was stopped arrive once: none lost, none doubled (ticker-continuity, every log).
console_stalled_save() {
  _pid=$(pidof xenconsoled); _t0=$(now)
  kill -STOP "$_pid"; sleep 4
  rm -f $SAVE_DIR/$1-stall.img
  step stalled-save 180 xl save "$1" $SAVE_DIR/$1-stall.img; _rc=$?
  kill -CONT "$_pid"
  [ $_rc = 0 ] || return 1
  step stalled-restore 180 xl restore $SAVE_DIR/$1-stall.img || return 1
  rm -f $SAVE_DIR/$1-stall.img
  if wait_grep "$1" 'bytes unread: taken back and written again' 30; then check console-left-unread PASS "$(dt "$_t0" "$(now)")" "$(cat $(logs_of "$1") | tr -d '\r' | grep -a 'bytes unread: taken back' | tail -1)"
  else check console-left-unread FAIL "$(dt "$_t0" "$(now)")" 'no sign the suspend found unread console bytes'; fi
  progress "$1" "$2" 30 continues-after-stalled-save || return 1
  # The same with a checkpoint: the suspend is cancelled, the bytes go back into the same ring.
  kill -STOP "$_pid"; sleep 4
  step stalled-checkpoint 180 xl save -c "$1" $SAVE_DIR/$1-stall.img; _rc=$?
  kill -CONT "$_pid"; rm -f $SAVE_DIR/$1-stall.img
  [ $_rc = 0 ] || return 1
  progress "$1" "$2" 30 continues-after-stalled-checkpoint
}
# control_misuse NAME WORD: see Scenario::Control.
control_misuse() {
  console_stall "$1" "$2" 12 || return 1
  console_stalled_save "$1" "$2" || return 1
  _dom=$(xl domid "$1"); _node=/local/domain/$_dom/control
  _t0=$(now)
  [ "$(xenstore-read $_node/feature-suspend 2>/dev/null)" = 1 ] && check feature-suspend PASS 0 "$_node/feature-suspend = 1" \
    || check feature-suspend FAIL 0 "$_node/feature-suspend missing"
  xenstore-write $_node/shutdown bogus-request
  if wait_grep "$1" 'unknown request "bogus-request" ignored' 20; then check unknown-request PASS "$(dt "$_t0" "$(now)")" "logged and ignored"
  else check unknown-request FAIL "$(dt "$_t0" "$(now)")" "no sign the guest saw it"; fi
  _left=$(xenstore-read $_node/shutdown 2>/dev/null)
  [ -z "$_left" ] && check request-acknowledged PASS 0 "control/shutdown cleared" || check request-acknowledged FAIL 0 "control/shutdown still '$_left'"
  progress "$1" "$2" 30 keeps-running || return 1
  # Two operators save the same guest at once.
  rm -f $SAVE_DIR/$1-a.img $SAVE_DIR/$1-b.img
  _t0=$(now)
  ( timeout 180 xl save "$1" $SAVE_DIR/$1-a.img > $T/sa.out 2>&1; echo $? > $T/sa.rc ) &
  ( sleep 0.2; timeout 180 xl save "$1" $SAVE_DIR/$1-b.img > $T/sb.out 2>&1; echo $? > $T/sb.rc ) &
  wait
  _ra=$(cat $T/sa.rc); _rb=$(cat $T/sb.rc)
  echo "XLAB-INFO concurrent saves: rc $_ra and $_rb; loser said: $(cat $T/sa.out $T/sb.out | grep -iE 'error|fail' | head -2 | tr '\n' ' ')"
  # The loser fails: usually at once (rc 1), but when its request lands while the guest is
  # already suspended for the winner, it waits for an acknowledgement that never comes and xl
  # logs "guest didn't acknowledge suspend" -- and measured once, still exits 0. So the loser
  # is the one that failed or logged an error; exactly one must be clean.
  _ea=$(grep -ciE 'error|fail' $T/sa.out); _eb=$(grep -ciE 'error|fail' $T/sb.out)
  if [ "$_ra" = 0 ] && [ "$_ea" = 0 ] && { [ "$_rb" != 0 ] || [ "$_eb" != 0 ]; }; then _img=$SAVE_DIR/$1-a.img
  elif [ "$_rb" = 0 ] && [ "$_eb" = 0 ] && { [ "$_ra" != 0 ] || [ "$_ea" != 0 ]; }; then _img=$SAVE_DIR/$1-b.img
  elif [ "$_ra" != 0 ] && [ "$_rb" != 0 ] && grep -q 'Failed to save domain, resuming domain' $T/sa.out $T/sb.out && exists "$1"; then
    # Both failed: xl's loser, failing, resumes the domain ("Failed to save domain, resuming
    # domain") -- and when the winner has already suspended it (fast with the suspend event
    # channel: the loser fails at its lock), that cancels the winner's suspend under it and
    # the winner fails too (xl 4.17's race, not the guest's). The guest must carry on.
    check concurrent-saves PASS "$(dt "$_t0" "$(now)")" "both refused (rc $_ra/$_rb): xl's loser resumed the domain the winner had suspended; the guest runs on"
    progress "$1" "$2" 30 continues || return 1
    save_restore "$1" again- "$2"
    return
  else
    sed 's/^/XLAB-INFO first save said: /' $T/sa.out; sed 's/^/XLAB-INFO second save said: /' $T/sb.out
    check concurrent-saves FAIL "$(dt "$_t0" "$(now)")" "rc $_ra/$_rb, error lines $_ea/$_eb: expected exactly one clean save"; return 1
  fi
  check concurrent-saves PASS "$(dt "$_t0" "$(now)")" "one clean save, the other refused (rc $_ra/$_rb, error lines $_ea/$_eb)"
  exists "$1" && { check saved-guest-gone FAIL 0 "the guest still exists after a successful save"; return 1; }
  step restore-winner 180 xl restore "$_img" || return 1
  rm -f $SAVE_DIR/$1-a.img $SAVE_DIR/$1-b.img
  progress "$1" "$2" 30 continues || return 1
  save_restore "$1" again- "$2"
}
# dom0_integrity N: two workers run N checksummed pipelines each (sort, gzip, md5sum) and N
# toolstack queries while the guest runs; any wrong result or crashed tool fails the check.
dom0_integrity() {
  seq 1 200000 > $T/nums; _ref=$(md5sum < $T/nums); _t0=$(now)
  for _w in a b; do
    ( _bad=0; _i=0
      while [ $_i -lt "$1" ]; do
        _i=$((_i + 1))
        [ "$(sort -r $T/nums | sort -n | gzip -1 | gunzip | md5sum)" = "$_ref" ] || _bad=$((_bad + 1))
        xl list >/dev/null 2>&1; [ $? -ge 128 ] && _bad=$((_bad + 1))
      done
      echo $_bad > $T/integrity.$_w ) &
  done
  wait
  _bad=$(($(cat $T/integrity.a) + $(cat $T/integrity.b)))
  if [ "$_bad" -eq 0 ]; then check dom0-integrity PASS "$(dt "$_t0" "$(now)")" "$((2 * $1)) pipelines and xl runs, all correct"
  else check dom0-integrity FAIL "$(dt "$_t0" "$(now)")" "$_bad of $((4 * $1)) dom0 computations wrong or crashed"; fi
}
# The consoles of this scenario's guests (named "$SID-NAME"; shown as NAME), and what Xen
# logged about their domains: ids are not reused within a boot, so the ids this scenario's
# guests had pick out its lines while other scenarios run beside it.
dump_logs() {
  for f in /var/log/xen/console/guest-"$SID"-*.log; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .log); n=${n#guest-"$SID"-}
    tr -d '\r' < "$f" | sed "s/^/XLAB-CON $n /"
  done
  _ids=$(sort -un $T/domids 2>/dev/null | tr '\n' '|'); _ids=${_ids%|}
  [ -n "$_ids" ] && xl dmesg 2>/dev/null | grep -E "\\(d($_ids)\\)|[^0-9]d($_ids)v[0-9]+ " | grep -v ' HVM' | tail -80 | sed 's/^/XLAB-DMESG /'
}

# ---- Scenarios: one function each. A scenario's test.sh (written by tools/src/lab.rs) sets
# XLAB_DIR (its directory: kernel, payload, xl configs), GUEST, WORD (the payload's counting
# word), CYCLES, PAYLOAD, defines ready() (the payload is running), writes the xl config
# $XLAB_DIR/$GUEST.cfg, then calls scenario_<name>.

# The xshim image's notes as Xen's own reader sees them.
check_notes() {
  if readnotes "$XLAB_DIR/kernel" > $T/notes 2>&1; then check readnotes PASS 0 "$(grep -c '' $T/notes) lines"
  else check readnotes FAIL 0 "$(tail -2 $T/notes | tr '\n' ' ')"; fi
  grep -E 'PHYS32_ENTRY|ENTRY|HYPERCALL_PAGE|GUEST_OS|SUSPEND_CANCEL' $T/notes | sed 's/^/XLAB-INFO readnotes: /'
}
# xl create, then wait until ready(); 1 if the guest never got there.
start_guest() {
  step create 120 xl create "$XLAB_DIR/$GUEST.cfg" || return 1
  note_domid "$GUEST"; _t0=$(now)
  if ready; then check reach-payload PASS "$(dt $_t0 $(now))" ready
  else check reach-payload FAIL "$(dt $_t0 $(now))" 'no sign of the payload'; return 1; fi
}
# The end of every scenario: what xl sees, no guest left, every console.
finish() {
  sleep 1; xl list | sed 's/^/XLAB-INFO xl list: /'
  exists "$GUEST" && xl destroy "$GUEST"
  journal_image "$GUEST" final-disk
  dump_logs
}
# repeat OP: OP (save_restore, checkpoint, migrate) CYCLES times, stopping at the first failure.
repeat() {
  _c=1; while [ $_c -le "$CYCLES" ]; do "$1" "$GUEST" "c$_c-" "$WORD" || break; _c=$((_c + 1)); done
}
scenario_boot() {
  check_notes; start_guest || { finish; return; }
  case "$PAYLOAD" in
    hello|abi-check|journal)
      _t0=$(now)
      if wait_gone "$GUEST" 60; then check powers-off PASS "$(dt $_t0 $(now))" 'domain gone'; else check powers-off FAIL 60 'still there'; fi;;
    *) step xl-shutdown 90 xl shutdown -w "$GUEST";;
  esac
  finish
}
scenario_saverestore() { check_notes; start_guest && repeat save_restore; finish; }
scenario_checkpoint() { check_notes; start_guest && repeat checkpoint; finish; }
scenario_migrate() { check_notes; start_guest && repeat migrate; finish; }
# Save/restore, checkpoint and migrate in random order at random moments (0-2.4 s apart).
# A failed operation does not end the soak: its cause is recorded (soak_failure), the guest is
# destroyed, its consoles kept apart as "<guest>-lifeN", and a fresh guest carries on, so a long
# run gives every failure, not just the first. It stops at SOAK_MAX_FAILURES failures, or when
# a fresh guest does not start.
SOAK_MAX_FAILURES=${SOAK_MAX_FAILURES:-10}
scenario_soak() {
  check_notes; start_guest || { finish; return; }
  _c=1; _fails=0; _life=1
  while [ $_c -le "$CYCLES" ]; do
    _r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    sleep "$(awk -v r="$_r" 'BEGIN { printf "%.1f", (r % 25) / 10 }')"
    case $((_r % 3)) in
      0) _op=save-restore; save_restore "$GUEST" "s$_c-" "$WORD";;
      1) _op=checkpoint; checkpoint "$GUEST" "s$_c-" "$WORD";;
      2) _op=migrate; migrate "$GUEST" "s$_c-" "$WORD";;
    esac
    if [ $? -ne 0 ]; then
      _fails=$((_fails + 1))
      soak_failure "$GUEST" "$_c" "$_op" "$_life"
      [ $_fails -ge "$SOAK_MAX_FAILURES" ] && { echo "XLAB-INFO soak stopped: $_fails failures"; break; }
      _life=$((_life + 1))
      start_guest || { echo "XLAB-INFO soak stopped: a fresh guest did not start"; break; }
    fi
    _c=$((_c + 1))
  done
  echo "XLAB-INFO soak summary: operations=$((_c > CYCLES ? CYCLES : _c)) of $CYCLES failures=$_fails lives=$_life"
  finish
}
# soak_failure NAME OP_NUMBER OP LIFE: why the operation failed, as far as dom0 can tell (the
# domain's state, the shim's last words, Xen's lines about the domain), then the guest is
# destroyed and its consoles renamed <NAME>-lifeLIFE (the host checks each life's ticker).
soak_failure() {
  _state=$(xl list 2>/dev/null | awk -v g="$1" '$1 == g || $1 == g "--incoming" { printf "%s:%s ", $1, $5 }')
  _last=$(cat $(logs_of "$1") 2>/dev/null | tr -d '\r' | grep -aiE 'xshim: (error|warn)|panic|fault|crash|poweroff|rip=' | tail -3 | tr '\n' '|')
  _ids=$(sort -un $T/domids 2>/dev/null | tail -2 | tr '\n' '|'); _ids=${_ids%|}
  _xen=$( [ -n "$_ids" ] && xl dmesg 2>/dev/null | grep -E "\\(d($_ids)\\)|[^0-9]d($_ids)v[0-9]+ " | grep -v ' HVM' | tail -3 | tr '\n' '|')
  # A guest still running but not answering: where its vCPU is.
  _ctx=$(for _d in $(xl list 2>/dev/null | awk -v g="$1" '($1 == g || $1 == g "--incoming") { print $2 }'); do timeout 10 xenctx "$_d" 0 2>&1 | grep -aiE 'rip|rsp|cs:' | head -4 | tr -s ' ' | tr '\n' ' '; done)
  echo "XLAB-INFO soak-failure op=$2 kind=$3 life=$4 state=[${_state:-no domain}] shim=[${_last%|}] xen=[${_xen%|}] vcpu0=[${_ctx% }] xl=[$(tail -2 $T/step.out 2>/dev/null | tr '\n' ' ')]"
  for _d in "$1--incoming" "$1"; do exists "$_d" && timeout 60 xl destroy "$_d"; done
  rm -f "$SAVE_DIR/$1".*
  for _f in $(logs_of "$1"); do
    case "$_f" in /dev/null) ;; *--incoming.log) mv "$_f" "${_f%--incoming.log}-life$4--incoming.log";; *) mv "$_f" "${_f%.log}-life$4.log";; esac
  done
}
# ---- Network (the pong payload on a vif; NET_IP is its address, dom0 is 10.99.0.1/16).
# net_check PREFIX: the standard tools reach the guest (ping, nc -u), then 20 numbered UDP
# datagrams each come back intact (tools/lab/net-probe.py, written apart from the payload).
net_check() {
  _t0=$(now)
  [ "$PAYLOAD" = linux ] && { wait_grep "$GUEST" 'NET up' 30 || { check "$1net-up" FAIL 30 'no NET up line'; return 1; }; }
  if timeout 20 ping -c 3 -i 0.2 -W 2 "$NET_IP" > $T/ping.out 2>&1; then check "$1ping" PASS "$(dt $_t0 $(now))" "$(grep -E 'received|rtt' $T/ping.out | tr '\n' ' ')"
  else check "$1ping" FAIL "$(dt $_t0 $(now))" "$(tail -3 $T/ping.out | tr '\n' ' ')"; return 1; fi
  # The ICMP probe (bench downtime) compares with a Linux guest: ping is the check there.
  [ "${NET_PROBE:-udp}" = icmp ] && return 0
  _t0=$(now); _word="nc-$1$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
  _got=$(echo "$_word" | timeout 10 nc -u -w 2 "$NET_IP" 7 2>&1 | head -1)
  [ "$_got" = "$_word" ] && check "$1nc-udp" PASS "$(dt $_t0 $(now))" "nc -u: '$_word' echoed" \
    || { check "$1nc-udp" FAIL "$(dt $_t0 $(now))" "nc -u: sent '$_word', got '$_got'"; return 1; }
  timeout 60 python3 /xlab/net-probe.py exchange "$NET_IP" 7 20 "$1udp"
}
# with_stream PREFIX COMMAND...: the command (a save/restore, checkpoint or migration) while
# dom0 sends the guest a datagram every 10 ms; afterwards the longest gap between replies is
# its downtime, and nothing sent outside the operation may be lost.
with_stream() {
  _w=$1; shift
  _port=7; [ "${NET_PROBE:-udp}" = icmp ] && _port=icmp
  python3 /xlab/net-probe.py stream "$NET_IP" $_port 10 $T/stream.log & _sp=$!
  sleep 1
  _ts0=$(date +%s.%N)
  "$@"; _wrc=$?
  _ts1=$(date +%s.%N)
  sleep 2
  kill -TERM $_sp 2>/dev/null; wait $_sp
  [ $_wrc -eq 0 ] || return $_wrc
  python3 /xlab/net-probe.py analyse $T/stream.log "$_ts0" "$_ts1" "${_w}downtime"
}
scenario_net() {
  [ "$PAYLOAD" = linux ] || check_notes
  start_guest || { finish; return; }
  net_check "" || { finish; return; }
  # bench downtime: UDP round trips and throughput first (the same echo port on both guests).
  if [ "${NET_PROBE:-udp}" = icmp ]; then
    timeout 60 python3 /xlab/net-probe.py exchange "$NET_IP" 7 200 rtt-udp
    timeout 60 python3 /xlab/net-probe.py throughput "$NET_IP" 7 5 1024 throughput-udp
  fi
  _c=1
  while [ $_c -le "$CYCLES" ]; do
    with_stream "c$_c-sr-" save_restore "$GUEST" "c$_c-sr-" "$WORD" && net_check "c$_c-sr-" || break
    with_stream "c$_c-ck-" checkpoint "$GUEST" "c$_c-ck-" "$WORD" && net_check "c$_c-ck-" || break
    with_stream "c$_c-mg-" migrate "$GUEST" "c$_c-mg-" "$WORD" && net_check "c$_c-mg-" || break
    _c=$((_c + 1))
  done
  finish
}
# The same operations as the xshim scenarios, once each, on the Linux PV guest.
scenario_linux_baseline() {
  start_guest && { migrate "$GUEST" '' "$WORD"; save_restore "$GUEST" '' "$WORD"; checkpoint "$GUEST" '' "$WORD"; }
  finish
}
# After migrate, save/restore and checkpoint, a guest that powers off must go away
# (on_poweroff="destroy": the xl that restored or received it watches it). The ticker powers
# itself off (ticks=N); the Linux guest is asked to (xl shutdown).
xl_processes() { ps -eo pid,ppid,args | grep -E 'bin/xl |[0-9] xl ' | grep -v grep | tr -s ' ' | tr '\n' ';'; }
scenario_lifecycle() {
  [ "$PAYLOAD" = linux ] || check_notes
  start_guest || { finish; return; }
  echo "XLAB-INFO xl processes after create: $(xl_processes)"
  for _f in /var/log/xen/xl-*.log; do [ -f "$_f" ] && tail -5 "$_f" | sed "s|^|XLAB-INFO $_f: |"; done
  migrate "$GUEST" '' "$WORD" || { finish; return; }
  echo "XLAB-INFO xl processes after migrate: $(xl_processes)"
  save_restore "$GUEST" '' "$WORD" || { finish; return; }
  echo "XLAB-INFO xl processes after save/restore: $(xl_processes)"
  checkpoint "$GUEST" '' "$WORD" || { finish; return; }
  echo "XLAB-INFO xl processes after checkpoint (before the poweroff): $(xl_processes)"
  [ "$PAYLOAD" = linux ] && step xl-shutdown 90 xl shutdown "$GUEST"
  # Our part: the guest shuts down (state s, not c: it asked for poweroff, it did not crash).
  # xl's part: its monitor destroys the domain (on_poweroff) -- but xl's monitor exits when it
  # sees the checkpoint's suspend ("Domain has suspended. Done. Exiting now"), although the
  # domain resumed, so after `xl save -c` nobody applies on_poweroff (measured; xl 4.17).
  _t0=$(now); _n=0; _st=
  while [ $_n -lt 180 ]; do
    exists "$GUEST" || { _st=gone; break; }
    _st=$(xl list "$GUEST" 2>/dev/null | awk 'NR==2 { print $5 }')
    case "$_st" in *c*) break;; *s*) [ -z "$(xl_processes)" ] && break;; esac
    sleep $POLL; heartbeat $_n "$GUEST to power off"; _n=$((_n + 1))
  done
  case "$_st" in
    gone) check powered-off PASS "$(dt $_t0 $(now))" 'shut down and destroyed (on_poweroff=destroy)';;
    *c*) check powered-off FAIL "$(dt $_t0 $(now))" "state $_st: crashed";;
    *s*) check powered-off PASS "$(dt $_t0 $(now))" "shut down (state $_st); not destroyed: xl's monitor had exited at the checkpoint's suspend, so on_poweroff was not applied (xl's doing)";;
    *) check powered-off FAIL "$(dt $_t0 $(now))" "state '$_st' after 90 s; xl processes: $(xl_processes)";;
  esac
  # What the monitoring xl processes logged (xl create, restore and migrate-receive fork one).
  for _f in /var/log/xen/xl-*.log; do [ -f "$_f" ] && tail -30 "$_f" | sed "s|^|XLAB-INFO $_f: |"; done
  finish
}
# Demand-populated memory (the ticker with grow=/discard=): save/restore, checkpoint and
# migration while it grows, once it has given memory back and while it grows again; every
# save image well under the guest's memory; then xl mem-set below what it uses: the shim's
# clean out-of-memory crash (on_crash=preserve keeps the domain).
image_fraction() { # CHECKNAME IMAGE: its size against the guest's memory
  _mem=$(awk -F= '$1 == "memory" { print $2 }' "$XLAB_DIR/$GUEST.cfg")
  _sz=$(stat -c %s "$2" 2>/dev/null || echo 0)
  echo "XLAB-INFO image_bytes=$_sz"
  if [ "$_sz" -gt 0 ] && [ "$_sz" -lt $((_mem * 1048576 / 2)) ]; then check "$1" PASS 0 "image $_sz bytes, memory $_mem MiB"
  else check "$1" FAIL 0 "image $_sz bytes, memory $_mem MiB"; fi
}
grow_line() { cat $(logs_of "$GUEST") 2>/dev/null | tr -d '\r' | grep -a '^GROW ' | tail -1; }
scenario_memory() {
  check_notes; start_guest || { finish; return; }
  wait_grep "$GUEST" '^GROW ' 60 || { check growing FAIL 60 'no GROW line'; finish; return; }
  echo "XLAB-INFO growing: $(grow_line)"
  _img=$SAVE_DIR/$GUEST.img
  step m1-save 180 xl save "$GUEST" "$_img" || { finish; return; }
  image_fraction m1-image-small "$_img"
  step m1-restore 180 xl restore "$_img" && rm -f "$_img" && progress "$GUEST" "$WORD" 30 m1-continues || { finish; return; }
  checkpoint "$GUEST" m2- "$WORD" || { finish; return; }
  migrate "$GUEST" m3- "$WORD" || { finish; return; }
  # Once memory has been given back (a GROW line with discarded=N > 0), again: the restored
  # guest then touches pages for the first time.
  _t0=$(now)
  if wait_grep "$GUEST" 'discarded=[1-9]' 120; then check gave-back PASS "$(dt $_t0 $(now))" "$(grep -a 'discarded=[1-9]' $(logs_of "$GUEST") | tr -d '\r' | tail -1)"
  else check gave-back FAIL 120 "no discard: $(grow_line)"; fi
  step m4-save 180 xl save "$GUEST" "$_img" || { finish; return; }
  image_fraction m4-image-small "$_img"
  step m4-restore 180 xl restore "$_img" && rm -f "$_img" && progress "$GUEST" "$WORD" 30 m4-continues || { finish; return; }
  migrate "$GUEST" m5- "$WORD" || { finish; return; }
  echo "XLAB-INFO before mem-set: $(grow_line)"
  # Below what the payload needs once it grows again after its next discard.
  step mem-set 60 xl mem-set "$GUEST" 24m
  _t0=$(now)
  if wait_grep "$GUEST" 'out of memory: the payload needs more than memory/target' 120; then
    check out-of-memory-reported PASS "$(dt $_t0 $(now))" "$(grep -a 'out of memory' $(logs_of "$GUEST") | tr -d '\r' | head -1)"
  else check out-of-memory-reported FAIL 120 "none: $(grow_line)"; fi
  sleep 1; _st=$(xl list "$GUEST" 2>/dev/null | awk 'NR==2 { print $5 }')
  case "$_st" in *c*) check domain-crashed PASS 0 "state $_st (on_crash=preserve)";; *) check domain-crashed FAIL 0 "state '$_st'";; esac
  finish
}
scenario_control() { check_notes; start_guest && control_misuse "$GUEST" "$WORD"; finish; }
# Bad data from the toolstack's side: before the guest runs, dom0 points its disk at backend
# domain 99999. The shim must say so, fail only that disk (the payload gets NoDevice), and
# keep running: the journal payload reports the error and powers off.
scenario_disk_bad_backend() {
  check_notes
  step create-paused 120 xl create -p "$XLAB_DIR/$GUEST.cfg" || { finish; return; }
  note_domid "$GUEST"
  _d=$(xl domid "$GUEST"); _dev=$(xenstore-list /local/domain/$_d/device/vbd 2>/dev/null | head -1)
  xenstore-write /local/domain/$_d/device/vbd/$_dev/backend-id 99999
  echo "XLAB-INFO wrote /local/domain/$_d/device/vbd/$_dev/backend-id = 99999"
  step unpause 30 xl unpause "$GUEST" || { finish; return; }
  _t0=$(now)
  if wait_grep "$GUEST" 'JOURNAL-ERROR' 60; then check payload-told PASS "$(dt $_t0 $(now))" "$(cat $(logs_of "$GUEST") | tr -d '\r' | grep -a 'JOURNAL-ERROR' | head -1)"
  else check payload-told FAIL 60 'no JOURNAL-ERROR line'; fi
  if wait_gone "$GUEST" 60; then check powers-off PASS "$(dt $_t0 $(now))" 'the payload ended and the shim powered the guest off'
  else check powers-off FAIL 60 "state $(xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $5 }')"; fi
  DISK_IMG=  # nothing was written: no journal to check
  finish
}
# A payload that faults: reported with a register dump; on_crash="preserve" keeps the domain.
scenario_crash() {
  check_notes; start_guest || { finish; return; }
  _t0=$(now)
  # A payload's fault, or the shim's own (xshim.selftest=...).
  note_domid "$GUEST"
  if wait_grep "$GUEST" ' exception #' 60; then
    check exception-reported PASS "$(dt $_t0 $(now))" "$(cat $(logs_of "$GUEST") | tr -d '\r' | grep -a ' exception #' | head -1)"
  else check exception-reported FAIL 60 'no exception report'; fi
  sleep 1; _st=$(xl list "$GUEST" 2>/dev/null | awk 'NR==2 { print $5 }')
  case "$_st" in *c*) check domain-crashed PASS 0 "state $_st (on_crash=preserve)";; *) check domain-crashed FAIL 0 "state '$_st'";; esac
  finish
}
# libvirt's libxl driver drives the guest instead of xl (Debian's libvirt-daemon-driver-xen).
VIRSH="virsh -c xen:///system"
libvirtd_up() {
  [ -n "$(pidof libvirtd)" ] || { mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; libvirtd --daemon < /dev/null > /dev/null 2>&1; }
  _n=0; while ! timeout 10 $VIRSH version > $T/virsh.version 2>&1; do
    [ $_n -ge 30 ] && { check libvirtd FAIL 30 "$(tail -2 $T/virsh.version | tr '\n' ' ')"; return 1; }
    sleep 1; _n=$((_n + 1))
  done
  check libvirtd PASS "$_n" "$(grep -E 'library|API|hypervisor' $T/virsh.version | tr -s ' ' | tr '\n' ';')"
}
# Stops libvirtd and removes its domain records (the next libvirt scenario starts it afresh).
libvirtd_reset() {
  kill $(pidof libvirtd) 2>/dev/null
  _n=0; while [ -n "$(pidof libvirtd)" ] && [ $_n -lt 20 ]; do sleep 0.5; _n=$((_n + 1)); done
  [ -n "$(pidof libvirtd)" ] && kill -9 $(pidof libvirtd) 2>/dev/null && sleep 0.5
  rm -f /etc/libvirt/libxl/*.xml /run/libvirt/libxl/*.xml /run/libvirtd.pid
  echo "XLAB-INFO libvirtd stopped and its domain records removed"
}
virsh_save_restore() { # NAME CHECKPREFIX WORD
  _img=$SAVE_DIR/$1.lv
  step "$2virsh-save" 180 $VIRSH save "$1" "$_img" || return 1
  exists "$1" && { check "$2saved-guest-gone" FAIL 0 "the guest still exists after virsh save"; return 1; }
  step "$2virsh-restore" 180 $VIRSH restore "$_img" || return 1
  rm -f "$_img"
  progress "$1" "$3" 30 "$2continues"
}
lv_start() { # CHECKPREFIX
  step "$1virsh-start" 120 $VIRSH start "$GUEST" || { sed 's/^/XLAB-INFO virsh: /' $T/step.out; return 1; }
  _t0=$(now)
  if ready; then check "$1reach-payload" PASS "$(dt $_t0 $(now))" ready
  else check "$1reach-payload" FAIL "$(dt $_t0 $(now))" 'no sign of the payload'; return 1; fi
}
# virsh shutdown: the payload powers off and libvirt applies on_poweroff (destroy).
lv_shutdown() { # CHECKPREFIX
  _t0=$(now)
  step "$1virsh-shutdown" 60 $VIRSH shutdown "$GUEST"
  if wait_gone "$GUEST" 60; then check "$1powers-off" PASS "$(dt $_t0 $(now))" 'domain gone after virsh shutdown'; return 0; fi
  _st=$(xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $5 }'); _lv=$($VIRSH domstate "$GUEST" 2>&1)
  check "$1powers-off" FAIL "$(dt $_t0 $(now))" "still there: xl state '$_st', libvirt says '$_lv'"
  return 1
}
scenario_libvirt() {
  check_notes
  libvirtd_up || { finish; return; }
  step virsh-define 60 $VIRSH define "$XLAB_DIR/$GUEST.xml" || { sed 's/^/XLAB-INFO virsh: /' $T/step.out; finish; return; }
  if lv_start ''; then
    _c=1; while [ $_c -le "$CYCLES" ]; do virsh_save_restore "$GUEST" "c$_c-" "$WORD" || break; _c=$((_c + 1)); done
    lv_shutdown ''
  fi
  # The second boot gets a console log of its own (the first domain is gone, so xenconsoled
  # has closed its file): each boot's ticker is checked on its own.
  for _f in $(logs_of "$GUEST"); do [ "$_f" = /dev/null ] || mv "$_f" "${_f%.log}-first-boot.log"; done
  # A live migration within one host: libvirt refuses it (the destination, the same libvirtd,
  # already has the domain active). The guest must keep running. After that refusal libvirt
  # 9.0 no longer sees the domain's shutdown (measured: the payload powers off, the domain is
  # `---s--` in xl, libvirt still says "running"): shown, not counted against the guest.
  if exists "$GUEST" || lv_start m-; then
    _t0=$(now)
    timeout 240 $VIRSH migrate --live "$GUEST" xen:///system > $T/step.out 2>&1; _rc=$?
    _why=$(grep -iE 'error|fail' $T/step.out | head -2 | tr '\n' ' ')
    if [ $_rc -eq 0 ]; then check virsh-migrate PASS "$(dt $_t0 $(now))" "rc=0"
    elif echo "$_why" | grep -qiE 'same host|already active'; then check virsh-migrate-refused PASS "$(dt $_t0 $(now))" "libvirt refuses a migration to itself: $_why"
    else check virsh-migrate FAIL "$(dt $_t0 $(now))" "rc=$_rc: $_why"; fi
    progress "$GUEST" "$WORD" 30 continues-after-migrate
    $VIRSH shutdown "$GUEST" > /dev/null 2>&1
    _t0=$(now); _n=0
    while [ "$(xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $5 }' | tr -d -- '-r')" != s ] && [ $_n -lt 60 ]; do sleep 1; _n=$((_n + 1)); done
    _st=$(xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $5 }')
    case "$_st" in *s*|'') check m-payload-powers-off PASS "$(dt $_t0 $(now))" "xl state '$_st' after virsh shutdown";;
      *) check m-payload-powers-off FAIL "$(dt $_t0 $(now))" "xl state '$_st'";; esac
    echo "XLAB-INFO after the refused migration, libvirt says the domain is: $($VIRSH domstate "$GUEST" 2>&1 | head -1)"
    # libvirt 9.0 keeps the refused migration's job: the domain's state change lock stays held
    # (by remoteDispatchDomainMigrateBegin3Params), so libvirt neither sees the shutdown nor
    # can destroy or undefine the domain (each attempt times out after 30 s). xl removes it and
    # libvirtd is restarted without its records.
    timeout 10 $VIRSH destroy "$GUEST" > $T/lv.out 2>&1; _rc=$?
    [ $_rc -eq 0 ] || echo "XLAB-INFO virsh destroy: rc $_rc (124: it hung) $(tr '\n' ' ' < $T/lv.out)"
    exists "$GUEST" && xl destroy "$GUEST"
    libvirtd_reset
  fi
  if [ -n "$(pidof libvirtd)" ]; then
    timeout 30 $VIRSH undefine "$GUEST" > $T/lv.out 2>&1 || echo "XLAB-INFO virsh undefine: $(tr '\n' ' ' < $T/lv.out)"
    $VIRSH list --all 2>&1 | sed 's/^/XLAB-INFO virsh list: /'
  fi
  finish
}
scenario_dom0_check() { check_notes; start_guest && dom0_integrity $((CYCLES * 10)); finish; }
scenario_demo() {
  check_notes; start_guest || { finish; return; }
  wait_count "$GUEST" TICK 4 60; echo "XLAB-INFO saving at TICK $(last_count "$GUEST" TICK)"
  save_restore "$GUEST" '' "$WORD" && wait_count "$GUEST" TICK $(( $(last_count "$GUEST" TICK) + 3 )) 60
  finish
}
# One lab boot, guests of the same size one after the other (GUESTS: name:label:word:ready):
# the xshim ticker (xa), optionally another build's shim (xc, "before"), and the Linux PV
# baseline (xb); each created, saved+restored CYCLES times, checkpointed and migrated; check
# names carry the label.
scenario_compare() {
  for _cmp_g in $GUESTS; do
    IFS=: read -r _cmp_name _cmp_who _cmp_word _cmp_ready <<EOF_G
$_cmp_g
EOF_G
    step "$_cmp_who-create" 120 xl create "$XLAB_DIR/$_cmp_name.cfg" || continue
    note_domid "$_cmp_name"
    _t0=$(now)
    if wait_count "$_cmp_name" "$_cmp_word" "$_cmp_ready" 240; then check "$_cmp_who-reach-payload" PASS "$(dt $_t0 $(now))" ready
    else check "$_cmp_who-reach-payload" FAIL 240 'no output'; fi
    # The xshim guests give their untouched memory back from the payload's WAIT: the figures
    # are for the steady state, once that is done (or at the PV floor).
    if [ "$_cmp_who" != linux ]; then
      _t0=$(now)
      if wait_grep "$_cmp_name" 'untouched memory (is given back|kept)' 120; then echo "XLAB-INFO $_cmp_who gave back its untouched memory in $(dt $_t0 $(now)) s"
      else echo "XLAB-INFO $_cmp_who had not given back its untouched memory after 120 s"; fi
    fi
    _c=1; while [ $_c -le "$CYCLES" ]; do save_restore "$_cmp_name" "$_cmp_who-c$_c-" "$_cmp_word" || break; _c=$((_c + 1)); done
    checkpoint "$_cmp_name" "$_cmp_who-" "$_cmp_word"; migrate "$_cmp_name" "$_cmp_who-" "$_cmp_word"
    exists "$_cmp_name" && xl destroy "$_cmp_name"
  done
  dump_logs
}

# `bench disk`: each guest (GUESTS: name:label) measures its disk and powers off.
# CYCLES rounds, the guests taking turns in each (xshim, Linux, xshim, ...): the host takes
# each figure's median over the rounds, so a slow moment of the lab falls on both alike.
# A guest's console log grows over its rounds: round R is done at its R-th BENCH end line.
scenario_disk_bench() {
  _r=1; while [ $_r -le "$CYCLES" ]; do
    for _b_g in $GUESTS; do
      _b_name=${_b_g%%:*}; _b_who=${_b_g#*:}
      step "$_b_who-r$_r-create" 120 xl create "$XLAB_DIR/$_b_name.cfg" || continue
      note_domid "$_b_name"; _t0=$(now); _n=0
      # A guest that crashed (the lab's emulator fault included) ends the wait at once.
      _gone=
      while [ "$(count_lines "$_b_name" 'BENCH (done|-ERROR)')" -lt $_r ] && [ $_n -lt 1200 ]; do
        sleep $POLL; heartbeat $_n "$_b_name for BENCH round $_r"; _n=$((_n + 1))
        if [ $((_n % 10)) -eq 0 ]; then _st=$(xl list "$_b_name" 2>/dev/null | awk 'NR == 2 { print $5 }'); case "${_st:-gone}" in *c*|gone) _gone="state '${_st:-gone}'"; break;; esac; fi
      done
      if [ "$(count_lines "$_b_name" 'BENCH done')" -ge $_r ]; then check "$_b_who-r$_r-bench" PASS "$(dt $_t0 $(now))" done
      elif [ -n "$_gone" ]; then check "$_b_who-r$_r-bench" FAIL "$(dt $_t0 $(now))" "the guest crashed or went away ($_gone) before its BENCH done line"; xl destroy "$_b_name" 2>/dev/null
      elif [ $_n -ge 1200 ]; then check "$_b_who-r$_r-bench" FAIL 600 'no BENCH done line'
      else check "$_b_who-r$_r-bench" FAIL "$(dt $_t0 $(now))" "$(grep -ah 'BENCH-ERROR' $(logs_of "$_b_name") | head -1)"; fi
      wait_gone "$_b_name" 30 || xl destroy "$_b_name"
    done
    _r=$((_r + 1))
  done
  dump_logs
}

# ---- The session: one lab boot, many scenarios (/xlab/session: "PHASE LANE DIR SECONDS" per
# line). Phases run one after another; within a phase, each lane is a sequence of scenarios
# and the lanes run side by side (the host plans them: see `plan` in tools/src/lab.rs).
# Each scenario runs in its own directory under its own time limit, its output lines tagged
# "@DIR " for the host; after it, none of its guests, save images or console logs is left, and
# dom0 must still answer, or the session stops and says why (the host reboots the lab for the
# rest).
lab_cleanup() { # SID
  # Domains libvirt knows of (the libvirt scenario), then every domain of the scenario left.
  if [ -n "$(pidof libvirtd)" ]; then
    for _d in $(timeout 20 $VIRSH list --all --name 2>/dev/null | grep "^$1-"); do timeout 30 $VIRSH destroy "$_d" >/dev/null 2>&1; timeout 30 $VIRSH undefine "$_d" >/dev/null 2>&1; done
    # A domain libvirt will not let go of (after a refused migration it kept one as running):
    # libvirtd is stopped and its domain records removed; the next scenario starts it afresh.
    _left=$(timeout 20 $VIRSH list --all --name 2>/dev/null | grep "^$1-" | tr '\n' ' ' | tr -s ' ')
    if [ -n "${_left# }" ]; then
      echo "XLAB-INFO libvirt kept domain(s) $_left after destroy and undefine"
      libvirtd_reset
    fi
  fi
  for _d in $(xl list 2>/dev/null | awk -v p="$1-" 'NR > 1 && index($1, p) == 1 { print $1 }'); do timeout 60 xl destroy "$_d" 2>/dev/null; done
  pkill -f "xl migrate .*$1-" 2>/dev/null
  rm -rf "$SAVE_DIR/$1-"* /var/log/xen/console/guest-"$1"-*.log "/tmp/xlab-$1"
}
lab_healthy() { # SID
  timeout 30 xl list > /tmp/health.$1 2>&1 || { echo "xl list failed or hung: $(tail -1 /tmp/health.$1)"; return 1; }
  _left=$(awk -v p="$1-" 'NR > 1 && index($1, p) == 1 { print $1 }' /tmp/health.$1 | tr '\n' ' ')
  [ -z "$_left" ] || { echo "a guest is left: $_left"; return 1; }
  timeout 20 xenstore-read /local/domain/0/name > /dev/null 2>&1 || { echo "xenstore does not answer"; return 1; }
  echo ok
}
# dom0's footprint, for leak checks across a session: used memory (KiB) and xenstore nodes.
lab_footprint() {
  echo "XLAB-INFO dom0 footprint: mem_used_kib=$(awk '/MemTotal/ { t = $2 } /MemAvailable/ { a = $2 } END { print t - a }' /proc/meminfo) xenstore_nodes=$(timeout 20 xenstore-ls -f 2>/dev/null | grep -c '')"
}
# run_lane PHASE LANE: the lane's scenarios, one after another. Lines are tagged by `sed -u`,
# which writes each line with one write(2): lines of lanes side by side never mix.
run_lane() {
  awk -v p="$1" -v l="$2" '$1 == p && $2 == l { print $3, $4 }' /xlab/session > /tmp/lane.$1.$2
  while read -r _s_dir _s_limit; do
    [ -f /tmp/xlab-sick ] && break
    echo "XLAB-SCENARIO-BEGIN $_s_dir $(now)"
    { ( cd "/xlab/$_s_dir" && timeout -k 10 "$_s_limit" sh ./test.sh ) 2>&1; echo $? > /tmp/rc.$_s_dir; } | sed -u "s/^/@$_s_dir /"
    _s_rc=$(cat /tmp/rc.$_s_dir)
    lab_cleanup "$_s_dir" 2>&1 | sed -u "s/^/@$_s_dir /"
    _s_health=$(lab_healthy "$_s_dir")
    echo "XLAB-SCENARIO-END $_s_dir $_s_rc $(now)"
    if [ "$_s_health" != ok ]; then echo "XLAB-LAB-SICK $_s_dir $_s_health"; touch /tmp/xlab-sick; break; fi
  done < /tmp/lane.$1.$2
}
run_session() {
  lab_footprint
  for _p in $(awk '{ print $1 }' /xlab/session | uniq); do
    [ -f /tmp/xlab-sick ] && break
    for _l in $(awk -v p="$_p" '$1 == p { print $2 }' /xlab/session | sort -un); do run_lane "$_p" "$_l" & done
    wait
  done
  lab_footprint
}
