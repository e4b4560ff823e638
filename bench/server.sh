#!/usr/bin/env bash
# server.sh — cairn-server side by side with redis-server, in one run, with
# the same redis-benchmark flags: SET, GET, INCR, MSET at -P 1 and -P 16;
# Redis without persistence, with appendfsync everysec and always; Cairn with
# sync always and interval. Then memory (RSS) after loading 1M keys and the
# restart time with them, each beside Redis's (and Cairn's RSS without its
# caches); and, for SET and GET at
# -P 1, the CPU the server and the client each spent per request.
#
#   bench/server.sh [--quick] [--requests N] [--clients N] [--runs R] [--keep]
#
# --runs R: every configuration R times, the runs interleaved (each on a
# fresh server and data directory); the table gives medians, and the target
# lines each run's ratio too. On a small, shared machine one run says
# little: use 3 or more.
#
# Needs redis-server and redis-tools (scripts/setup.sh --bench installs
# them). Prints a table: requests/s, p99 latency (ms), and Cairn/Redis ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
N=500000
C=50
LOADKEYS=1000000
KEEP=0
RUNS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) N=50000; LOADKEYS=100000 ;;
    --requests) N="$2"; shift ;;
    --clients) C="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) echo "server.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNS" in ''|*[!0-9]*|0) echo "server.sh: --runs wants a positive number" >&2; exit 2 ;; esac
for p in redis-server redis-benchmark redis-cli; do
  command -v "$p" >/dev/null || { echo "server.sh: $p missing (scripts/setup.sh --bench)" >&2; exit 1; }
done
[ -x build/cairn-server ] || { echo "server.sh: build first (make)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/cairn-server-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_up() { # port
  for _ in $(seq 1 600); do
    redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server.sh: nothing answers on port $1" >&2; return 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

SERVER_PID=""
start_cairn() { # name sync port [more flags]
  mkdir -p "$WORK/$1"
  build/cairn-server --port "$3" --dir "$WORK/$1/data" --sync "$2" "${@:4}" \
    >"$WORK/$1/log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); wait_up "$3"
}
start_redis() { # name mode port
  mkdir -p "$WORK/$1"
  local args=(--port "$3" --dir "$WORK/$1" --save "" --protected-mode no --daemonize no)
  case "$2" in
    none) args+=(--appendonly no) ;;
    everysec) args+=(--appendonly yes --appendfsync everysec) ;;
    always) args+=(--appendonly yes --appendfsync always) ;;
  esac
  redis-server "${args[@]}" >"$WORK/$1/log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); wait_up "$3"
}
start_config() { # config name port: a server as CONFIGS names it
  case "$1" in
    cairn-*) start_cairn "$2" "${1#cairn-}" "$3" ;;
    redis-*) start_redis "$2" "${1#redis-}" "$3" ;;
  esac
}
stop_server() { # port pid
  redis-cli -p "$1" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  for _ in $(seq 1 1200); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$2" 2>/dev/null || true
}

# RUN_RPS / RUN_P99["config,test,P,run"]: each run's figures; RPS / P99
# ["config,test,P"]: their medians (median_of).
declare -A RPS P99 RUN_RPS RUN_P99
run_bench() { # config port run
  for P in 1 16; do
    redis-benchmark -p "$2" -c "$C" -n "$N" -d 100 -r 1000000 -P "$P" \
      -t set,get,incr,mset --csv 2>/dev/null >"$WORK/$1.P$P.r$3.csv"
    while IFS=, read -r test rps avg min p50 p95 p99 max; do
      test=${test//\"/}; [ "$test" = test ] && continue
      test=${test%% *}
      RUN_RPS["$1,$test,$P,$3"]=${rps//\"/}
      RUN_P99["$1,$test,$P,$3"]=${p99//\"/}
    done <"$WORK/$1.P$P.r$3.csv"
    echo "  $1 -P $P: $(tr '\n' ' ' <"$WORK/$1.P$P.r$3.csv" | cut -c1-160)..." >&2
  done
}
median_of() { python3 -c 'import sys,statistics as s; v=[float(x) for x in sys.argv[1:] if x]; print("%.2f" % s.median(v) if v else "")' "$@"; }

CONFIGS=(cairn-always cairn-interval redis-none redis-everysec redis-always)
for run in $(seq 1 "$RUNS"); do
  for cfg in "${CONFIGS[@]}"; do
    port=$(free_port)
    echo "server.sh: run $run/$RUNS: $cfg on port $port ($N requests, $C clients)" >&2
    start_config "$cfg" "$cfg.r$run" "$port"
    run_bench "$cfg" "$port" "$run"
    stop_server "$port" "$SERVER_PID"
  done
done
for cfg in "${CONFIGS[@]}"; do
  for t in SET GET INCR MSET; do
    for P in 1 16; do
      r=(); q=()
      for run in $(seq 1 "$RUNS"); do
        r+=("${RUN_RPS[$cfg,$t,$P,$run]:-}"); q+=("${RUN_P99[$cfg,$t,$P,$run]:-}")
      done
      RPS["$cfg,$t,$P"]=$(median_of "${r[@]}")
      P99["$cfg,$t,$P"]=$(median_of "${q[@]}")
    done
  done
done

# Where the time goes at -P 1: for SET and GET, one more run per
# configuration (a fifth of N requests), with the CPU the server and
# redis-benchmark each used per request and how busy the client was. A
# client near 100 % busy bounds the rate whatever the server does; a
# durable server whose client idles is waiting for its disk.
CLK=$(getconf CLK_TCK)
declare -A CPU_S CPU_C BUSY_C RPS1
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_run() { # config port test
  local n=$(( N / 5 )) t0 t1 out
  t0=$(cpu_ticks "$SERVER_PID")
  out=$( { TIMEFORMAT='%U %S %R'; time redis-benchmark -p "$2" -c "$C" -n "$n" -d 100 \
           -r 1000000 -P 1 -t "$3" --csv >"$WORK/$1.cpu.$3.csv" 2>/dev/null; } 2>&1 )
  t1=$(cpu_ticks "$SERVER_PID")
  read -r cu cs wall <<<"$out"
  RPS1["$1,$3"]=$(awk -F, 'NR == 2 {gsub(/"/, "", $2); print $2}' "$WORK/$1.cpu.$3.csv")
  CPU_S["$1,$3"]=$(python3 -c "print('%.1f' % (($t1 - $t0) / $CLK * 1e6 / $n))")
  CPU_C["$1,$3"]=$(python3 -c "print('%.1f' % (($cu + $cs) * 1e6 / $n))")
  BUSY_C["$1,$3"]=$(python3 -c "print('%.0f' % (100 * ($cu + $cs) / $wall) if $wall > 0 else '?')")
}
for cfg in "${CONFIGS[@]}"; do
  port=$(free_port)
  echo "server.sh: CPU per request: $cfg on port $port" >&2
  start_config "$cfg" "$cfg.cpu" "$port"
  cpu_run "$cfg" "$port" set
  cpu_run "$cfg" "$port" get
  stop_server "$port" "$SERVER_PID"
done

# Memory and restart time with LOADKEYS keys (Cairn sync always vs Redis
# appendfsync always: both durable).
load() { # port
  python3 - "$LOADKEYS" <<'PY' | redis-cli -p "$1" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
for i in range(n):
    k = b"key:%012d" % i
    v = b"v" * 100
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PY
}
# cairn-nocache: the same without the row cache and with a 1 MiB block
# cache. The caches take what they are offered while they have room
# (flushes offer what they write), up to their budgets (512 MiB each by
# default): the difference is memory the caches hold, not the data's.
NOCACHE=(--row-cache-size 0 --block-cache-size 1mb)
start_load() { # config port
  case "$1" in
    cairn-always) start_cairn "load-$1" always "$2" ;;
    cairn-nocache) start_cairn "load-$1" always "$2" "${NOCACHE[@]}" ;;
    *) start_redis "load-$1" always "$2" ;;
  esac
}
declare -A MEM RESTART
for cfg in cairn-always cairn-nocache redis-always; do
  port=$(free_port)
  start_load "$cfg" "$port"
  load "$port"
  MEM[$cfg]=$(rss_kb "$SERVER_PID")
  stop_server "$port" "$SERVER_PID"
  t0=$(date +%s.%N)
  start_load "$cfg" "$port"
  until [ "$(redis-cli -p "$port" GET key:000000000000 2>/dev/null | head -c1)" = v ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  RESTART[$cfg]=$(python3 -c "print('%.2f' % ($t1 - $t0))")
  stop_server "$port" "$SERVER_PID"
done

ratio() { python3 -c "a,b=float('$1' or 0),float('$2' or 0);print('%.2fx'%(a/b) if b>0 else 'n/a')"; }
echo
echo "cairn-server vs redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'): redis-benchmark -c $C -n $N -d 100 -r 1000000; requests/s (p99 ms)$([ "$RUNS" -gt 1 ] && echo ", medians of $RUNS interleaved runs")"
printf '%-6s %3s %18s %18s %18s %18s %18s %9s %9s %9s\n' test P cairn-always cairn-interval redis-none redis-everysec redis-always 'ca/r-alw' 'ca/r-evs' 'ci/r-evs'
for t in SET GET INCR MSET; do
  for P in 1 16; do
    row=()
    for cfg in "${CONFIGS[@]}"; do row+=("$(printf '%s (%s)' "${RPS[$cfg,$t,$P]:-?}" "${P99[$cfg,$t,$P]:-?}")"); done
    printf '%-6s %3s %18s %18s %18s %18s %18s %9s %9s %9s\n' "$t" "$P" "${row[@]}" \
      "$(ratio "${RPS[cairn-always,$t,$P]:-}" "${RPS[redis-always,$t,$P]:-}")" \
      "$(ratio "${RPS[cairn-always,$t,$P]:-}" "${RPS[redis-everysec,$t,$P]:-}")" \
      "$(ratio "${RPS[cairn-interval,$t,$P]:-}" "${RPS[redis-everysec,$t,$P]:-}")"
  done
done
echo
# A target line: the ratio of the medians, then each run's ratio.
target() { # label cfg-a cfg-b test
  local out="$1:" P run per
  for P in 1 16; do
    per=()
    for run in $(seq 1 "$RUNS"); do
      per+=("$(ratio "${RUN_RPS[$2,$4,$P,$run]:-}" "${RUN_RPS[$3,$4,$P,$run]:-}")")
    done
    out+=" -P $P $(ratio "${RPS[$2,$4,$P]:-}" "${RPS[$3,$4,$P]:-}")"
    [ "$RUNS" -gt 1 ] && out+=" (runs: ${per[*]})"
    [ "$P" = 1 ] && out+=","
  done
  echo "$out"
}
target "GET vs redis-none (target >= 1.0x)" cairn-always redis-none GET
target "SET always vs redis always (target >= 1.0x)" cairn-always redis-always SET
target "SET always vs redis everysec (target >= 0.8x)" cairn-always redis-everysec SET
echo
echo "CPU per request at -P 1 (one run of $(( N / 5 )) requests each): requests/s, server CPU us/request, redis-benchmark CPU us/request (its busy %)"
printf '%-6s %-15s %12s %12s %18s\n' test config requests/s 'server us' 'client us (busy)'
for t in set get; do
  for cfg in "${CONFIGS[@]}"; do
    printf '%-6s %-15s %12s %12s %18s\n' "${t^^}" "$cfg" "${RPS1[$cfg,$t]:-?}" \
      "${CPU_S[$cfg,$t]:-?}" "${CPU_C[$cfg,$t]:-?} (${BUSY_C[$cfg,$t]:-?} %)"
  done
done
echo
echo "$LOADKEYS keys of 100 bytes (durable: cairn sync always, redis appendfsync always):"
echo "  RSS after loading:  cairn $(( ${MEM[cairn-always]:-0} / 1024 )) MiB, redis $(( ${MEM[redis-always]:-0} / 1024 )) MiB ($(ratio "${MEM[cairn-always]:-}" "${MEM[redis-always]:-}"))"
echo "  RSS without caches: cairn $(( ${MEM[cairn-nocache]:-0} / 1024 )) MiB ($(ratio "${MEM[cairn-nocache]:-}" "${MEM[redis-always]:-}") of redis; row cache off, block cache 1 MiB)"
echo "  restart to first read: cairn ${RESTART[cairn-always]:-?} s, redis ${RESTART[redis-always]:-?} s"
