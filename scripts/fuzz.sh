#!/usr/bin/env bash
# Run the cargo-fuzz targets in fuzz/ (libFuzzer + AddressSanitizer), each for a fixed time.
#
#   scripts/fuzz.sh                  every target, $FUZZ_SECONDS each (default 60)
#   scripts/fuzz.sh command_parse    only the named target(s)
#   FUZZ_SECONDS=20 scripts/fuzz.sh  a short run, as in CI
#
# The machine has only a stable Rust toolchain: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags
# cargo-fuzz passes (sanitizer, coverage passes). See fuzz/README.md.
#
# Corpus: the committed seeds in fuzz/corpus/<target>/ are read; what the fuzzer finds goes to
# fuzz/work/<target>/ (not committed), which later runs start from. Crashes are written to
# fuzz/artifacts/<target>/ and make this script exit non-zero. Logs: fuzz/work/<target>.log.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_SANITIZER (address | none; default address),
# CARGO_FUZZ_VERSION (installed with `cargo install` when cargo-fuzz is missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
cargo_fuzz_version=${CARGO_FUZZ_VERSION:-0.13.2}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz] installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "[fuzz] building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build -O --sanitizer "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    echo "[fuzz] $t for ${seconds}s"
    # Working corpus first (new inputs are written there), committed seeds second.
    if cargo fuzz run -O --sanitizer "$sanitizer" "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"work/$t.log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "work/$t.log" |
            sed "s/^/[fuzz] $t: /"
    else
        echo "[fuzz] $t FAILED; the end of its log (work/$t.log):"
        tail -n 40 "work/$t.log"
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "[fuzz] crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "[fuzz] no crashes"
