#!/usr/bin/env bash
# Every scenario vs baseline_2017, paired: see README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
extra=()
[ -n "${WEEKS:-}" ] && extra+=(--weeks "$WEEKS")
.venv/bin/sim compare baseline_2017 us_withdrawal kurdish_baghdad_conflict turkey_intervention \
    no_deconfliction porous_borders fast_collapse --seeds "${SEEDS:-10}" --geography res_010 \
    --out outputs/experiments/scenario_matrix "${extra[@]}"
