#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time, one after the other; exits non-zero
# if any target found a crash (panic, failed property, timeout, out of memory).
#
#   fuzz/run.sh                      every target, 60 s each
#   FUZZ_SECONDS=300 fuzz/run.sh mode config_yaml
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_TOOLCHAIN (default nightly),
# FUZZ_SANITIZER (address, the default, or none: faster), FUZZ_TIMEOUT (seconds one input may
# take before it counts as a hang, default 10). Needs cargo-fuzz:
# `cargo install cargo-fuzz --locked`.
set -uo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
sanitizer="${FUZZ_SANITIZER:-address}"
timeout="${FUZZ_TIMEOUT:-10}"

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
  echo "run.sh: needs cargo-fuzz and a $toolchain toolchain:" >&2
  echo "  rustup toolchain install $toolchain && cargo install cargo-fuzz --locked" >&2
  exit 2
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
cargo "+$toolchain" fuzz build --sanitizer "$sanitizer" || exit 2

# What fuzzing adds to a corpus goes here, not among the checked-in seeds (corpus/<target>/).
work="target/fuzz-corpus"
logs="target/fuzz-logs"
mkdir -p "$logs"

failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "corpus/$target" "artifacts/$target"
  log="$logs/$target.log"
  echo "== $target: ${seconds}s"
  cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" "$target" \
    "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  status=$?
  # libFuzzer's last status line: `#N DONE cov: C ft: F corp: ... exec/s: E rss: R`.
  done_line="$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1)"
  runs="$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$')"
  rate="$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$')"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+$')"
  ft="$(grep -oE 'ft: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+$')"
  corp="$(grep -oE 'corp: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+$')"
  if [ "$status" -eq 0 ]; then
    line="ok     $target: ${runs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
  else
    failed+=("$target")
    found="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //')"
    line="FAILED $target (exit $status): ${found:-see $log}"
    grep -m 1 -A 12 -E "panicked at|ERROR: libFuzzer|==ERROR" "$log" | sed 's/^/    /'
    if [ -n "$found" ]; then
      echo "    reproduce: cargo +$toolchain fuzz run $target $found"
      echo "    minimise:  cargo +$toolchain fuzz tmin $target $found"
    fi
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s per target; logs in fuzz/$logs):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]}"
  exit 1
fi
