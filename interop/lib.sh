# The harness shared by oauth_run.sh and gateway_run.sh. Source it from the repo root with
# $label set (the prefix of the harness's own messages, and of the temporary directory's name).
# It sets $bin (the tokengate binary: $TOKENGATE_BIN, default target/debug/tokengate, made
# absolute) and $tmp (a temporary directory), and on exit stops every server `start` started
# and removes $tmp. A missing binary exits 2. `run_checks` runs the check script and also fails
# it when it exits 0 without a clean summary line.

bin=${TOKENGATE_BIN:-target/debug/tokengate}
if [[ ! -x $bin ]]; then
  echo "$label: no tokengate binary at $bin (build it, or set TOKENGATE_BIN)" >&2
  exit 2
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d -t "tokengate-$label.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs the harness's own commands; on failure shows their stderr and stops with status 2.
harness() {
  local err=$tmp/harness.err
  if ! "$@" 2>"$err"; then
    cat "$err" >&2
    echo "$label: harness step failed: $*" >&2
    exit 2
  fi
}

random_base64() {
  node -e "process.stdout.write(require('node:crypto').randomBytes($1).toString('base64'))"
}

# start NAME WHO CMD...: runs CMD in the background (stdout to $tmp/NAME.out, stderr to
# $tmp/NAME.log) and waits up to 30 s for its first stdout line, "WHO listening on URL"; sets
# $url. Servers pick a free port and announce it, so the line is the only way to learn it.
url=
start() {
  local name=$1 who=$2 line pid i
  shift 2
  # Created here so that polling never races the background redirection.
  : >"$tmp/$name.out"
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pid=$!
  pids+=("$pid")
  url=
  for ((i = 0; i < 300; i++)); do
    if (($(wc -l <"$tmp/$name.out") > 0)); then # a whole line
      line=$(head -n 1 "$tmp/$name.out")
      if [[ $line == "$who listening on "* ]]; then
        url=${line#"$who listening on "}
        return
      fi
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$label: $who did not start listening within 30 s; its output:" >&2
  else
    echo "$label: $who exited before listening; its output:" >&2
  fi
  cat "$tmp/$name.out" "$tmp/$name.log" >&2
  exit 2
}

# run_checks CMD...: runs a check script (oauth.mjs, gateway.mjs), its output shown as it
# comes, and returns its exit status; but a script that exits 0 without its last line being
# the summary of a clean run, `N passed, 0 failed` with N > 0 (it stopped before reporting, or
# reported nothing), returns 1.
run_checks() {
  local status=0 last
  "$@" | tee "$tmp/checks.out" || status=$?
  if ((status == 0)); then
    last=$(tail -n 1 "$tmp/checks.out")
    if [[ ! $last =~ ^[1-9][0-9]*\ passed,\ 0\ failed$ ]]; then
      echo "$label: $1 ${2:-} exited 0, but its last line is not \"N passed, 0 failed\":" \
        "${last:-(no output)}" >&2
      status=1
    fi
  fi
  return "$status"
}
