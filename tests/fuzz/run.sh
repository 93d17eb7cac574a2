#!/usr/bin/env bash
# Builds the libFuzzer harnesses (build-fuzz/, clang, ASan + UBSan) and runs each one for a
# bounded time: first every saved reproducer of tests/fuzz/regressions/NAME/ once, then
# fuzzing from the seed corpus tests/fuzz/corpus/NAME/ (with tests/fuzz/dict/NAME.dict when
# there is one). New inputs go to a temporary directory, never into the repository.
#
# Usage: tests/fuzz/run.sh [SECONDS] [NAME...]
#   SECONDS  fuzzing time per harness (default 30)
#   NAME     harnesses to run (default: all): config x509 starttls serverhello state notify http
#            crl ocsp ari filesd keystore dnsdisc
# Environment: CERTMON_FUZZ_BUILD (build directory, default build-fuzz),
#   CERTMON_FUZZ_OUT (where reproducers of failures are kept, default $CERTMON_FUZZ_BUILD/out),
#   CERTMON_FUZZ_CORPUS (a directory to keep the grown corpora in, NAME/ each; default: a
#   temporary one that is removed).
# Exits non-zero when any harness crashed, leaked, hung, or a sanitizer reported; each failure
# prints the sanitizer report and the path of its reproducer (docs/fuzzing.md: reproducing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-30}
[ $# -gt 0 ] && shift
all="config x509 starttls serverhello state notify http crl ocsp ari filesd keystore dnsdisc"
names=${*:-$all}
build=${CERTMON_FUZZ_BUILD:-$root/build-fuzz}
out=${CERTMON_FUZZ_OUT:-$build/out}

case "$secs" in
'' | *[!0-9]*) echo "run.sh: SECONDS must be a number, not '$secs'" >&2; exit 2 ;;
esac
for n in $names; do
    case " $all " in
    *" $n "*) ;;
    *) echo "run.sh: unknown harness '$n' (known: $all)" >&2; exit 2 ;;
    esac
done
if ! command -v clang >/dev/null 2>&1; then
    echo "run.sh: clang not found (contrib/install-deps.sh installs clang and libclang-rt-14-dev)" >&2
    exit 2
fi

echo "== fuzz: building in $build"
# Warnings are the gcc builds' business (CERTMON_WERROR there); clang's own extra warnings
# must not stop the fuzzers from running.
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCERTMON_FUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTMON_WERROR=OFF >/dev/null
targets=""
for n in $names; do targets="$targets fuzz_$n"; done
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/certmon-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp" "$out"
export TMPDIR="$work/tmp"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

# The sanitizer's or libFuzzer's report from a log, else its end.
report() {
    if grep -q -E "$pattern" "$1"; then
        grep -E -A40 "$pattern" "$1" | head -60 || true
    else
        tail -40 "$1"
    fi
}
pattern='^==[0-9]+==ERROR|runtime error|invariant failed|ALARM|deadly signal|out-of-memory'

failed=""
for n in $names; do
    bin="$build/tests/fuzz/fuzz_$n"
    log="$work/$n.log"
    dict=()
    [ -f "$here/dict/$n.dict" ] && dict=(-dict="$here/dict/$n.dict")

    # Saved reproducers first: each must run clean.
    regs=()
    if [ -d "$here/regressions/$n" ]; then
        while IFS= read -r -d '' f; do regs+=("$f"); done \
            < <(find "$here/regressions/$n" -type f ! -name '*.md' -print0 | sort -z)
    fi
    for f in "${regs[@]}"; do
        if ! "$bin" "${opts[@]}" "$f" >"$log" 2>&1; then
            echo "== fuzz_$n: FAILED on the saved reproducer $f"
            report "$log"
            echo "   reproduce: $bin $f"
            failed="$failed $n"
            continue 2
        fi
    done

    if [ -n "${CERTMON_FUZZ_CORPUS:-}" ]; then
        corpus="$CERTMON_FUZZ_CORPUS/$n"
    else
        corpus="$work/corpus/$n"
    fi
    mkdir -p "$corpus" "$out/$n"
    echo "== fuzz_$n: ${#regs[@]} reproducers clean; fuzzing for ${secs}s"
    rc=0
    "$bin" "${opts[@]}" "${dict[@]}" -max_total_time="$secs" -artifact_prefix="$out/$n/" \
        "$corpus" "$here/corpus/$n" >"$log" 2>&1 || rc=$?
    stats=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    echo "   $stats"
    if [ "$rc" -ne 0 ]; then
        echo "== fuzz_$n: FAILED (exit $rc)"
        report "$log"
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        if [ -n "$art" ]; then
            echo "   reproducer: $art"
            echo "   reproduce:  $bin $art"
        fi
        failed="$failed $n"
    fi
done

if [ -n "$failed" ]; then
    echo "== fuzz: FAILED:$failed"
    exit 1
fi
echo "== fuzz: all clean ($names)"
