#!/usr/bin/env bash
# us_withdrawal vs baseline_2017, paired ensemble: see README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/sim compare baseline_2017 us_withdrawal --seeds "${SEEDS:-20}" --geography res_010 \
    --out outputs/experiments/us_withdrawal_vs_baseline \
    --map-dates 2018-06-01,2018-12-01,2019-06-01
