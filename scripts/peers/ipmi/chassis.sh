#!/bin/sh
# External chassis-control program for ipmi_sim ("chassis_control" in lan.conf),
# used by providers/tests/ipmi_sim.rs. ipmi_sim runs it via popen() as:
#   chassis.sh <statefile> get power            -> must print "power:0" or "power:1"
#   chassis.sh <statefile> set power "0|1"      -> power off / on
#   chassis.sh <statefile> set reset "1"        -> hard reset (pulse)
#   chassis.sh <statefile> set shutdown "1"     -> soft shutdown (ACPI)
#   chassis.sh <statefile> set boot "pxe|..."   -> boot device
#   chassis.sh <statefile> set identify "15 0"  -> identify LED
# Non-zero exit => ipmi_sim answers completion code 0xFF (unspecified error).
state="$1"; op="$2"; shift 2
[ -f "$state" ] || echo 1 > "$state"          # default: power on
log="${state%.power}.chassis.log"
case "$op" in
  get)
    for p in "$@"; do
      case "$p" in
        power) echo "power:$(cat "$state")" ;;
        boot)  echo "boot:default" ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
      esac
    done ;;
  set)
    while [ $# -gt 0 ]; do
      p="$1"; v="$2"; shift 2
      echo "$(date +%s.%N) set $p $v" >> "$log"
      case "$p" in
        power)    echo "$v" > "$state" ;;
        reset)    : ;;                         # stays on; logged only
        shutdown) echo 0 > "$state" ;;         # graceful shutdown == off here
        boot|identify) : ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
      esac
    done ;;
  check) exit 1 ;;
  *) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
