#!/usr/bin/env bash
# Sensitivity study: see README.md.  METHOD=latin|morris, SAMPLES, WEEKS override the design;
# DESIGN=sensitivity_aftermath runs the Morris screening of the aftermath mechanisms (issue 13).
set -euo pipefail
cd "$(dirname "$0")/../.."
METHOD=${METHOD:-latin}
design=sensitivity_lhs
[ "$METHOD" = morris ] && design=sensitivity_morris
out="outputs/experiments/sensitivity_$METHOD"
if [ -n "${DESIGN:-}" ]; then design=$DESIGN; out="outputs/experiments/$DESIGN"; fi
args=(--out "$out" --samples "${SAMPLES:-48}")
[ -n "${DESIGN:-}" ] && [ -z "${SAMPLES:-}" ] && args=(--out "$out")
[ "$METHOD" = sobol ] && args+=(--method sobol)
[ -n "${WEEKS:-}" ] && args+=(--weeks "$WEEKS")
.venv/bin/sim sensitivity "$design" "${args[@]}"
