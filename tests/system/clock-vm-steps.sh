#!/bin/sh
# Runs as root inside the machine of tests/system/clock-vm.sh, once, at
# boot, from the second disk (mounted on /mnt/steps): installs the agent
# package, moves the clock as an employee with sudo would, and writes one
# line per check to /mnt/steps/results ("ok - …" or "FAIL - …"), then "done".
dir=/mnt/steps
results=$dir/results
: >"$results"
ok() { echo "ok - $*" >>"$results"; }
fail() { echo "FAIL - $*" >>"$results"; }
check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# Up to $1 seconds for a command to succeed.
eventually() {
    left=$1
    shift
    while [ "$left" -gt 0 ]; do
        "$@" && return 0
        sleep 1
        left=$((left - 1))
    done
    return 1
}
# How many events of the check the agent holds, as the console would read
# them; "none" when the agent did not answer with a list of events.
moved_events() {
    events=$(vigie-agent request events --params '{"limit":500}' 2>/dev/null) || { echo none; return; }
    case $events in "["*) ;; *) echo none; return ;; esac
    printf '%s\n' "$events" | grep -c '"rule_id": "tamper:clock-moved"'
}
moved_count_is() { [ "$(moved_events)" = "$1" ]; }
# The entry's fields (VIGIE_CHECK, VIGIE_DETAIL…), not only its message.
journal_says() { journalctl -u vigie-agent --no-pager -o verbose | grep -Eq "$1"; }

check "apt install ./vigie-agent.deb" apt-get install -y -q "$dir/vigie-agent.deb"
# The checks every 2 s rather than 30, to keep the test short.
printf '\n[tamper]\ncheck_every_secs = 2\n' >>/etc/vigie/agent.toml
systemctl restart vigie-agent
check "the agent runs under its unit" eventually 30 systemctl is-active --quiet vigie-agent
sleep 6
check "a clock left alone records nothing" moved_count_is 0
date -s '+10 seconds' >/dev/null
sleep 6
check "a 10 s step (under clock_jump_secs, 30 s) records nothing" moved_count_is 0
date -s '+2 hours' >/dev/null
check "the clock set 2 h forward is one event tamper:clock-moved" eventually 20 moved_count_is 1
# The jump alone, to the second: had the 10 s step not been looked at
# before, it would read +7210 s.
check "... and a journal entry: moved by +7200 s" eventually 10 journal_says 'moved by \+(7199|7200|7201) s'
date -s '-2 hours' >/dev/null
check "the clock set 2 h back is a second event" eventually 20 moved_count_is 2
check "... and a journal entry: moved by -7200 s" eventually 10 journal_says 'moved by -(7199|7200|7201) s'
journalctl -u vigie-agent --no-pager >"$dir/agent.log" 2>&1
echo done >>"$results"
