#!/usr/bin/env bash
# Sensitivity study: see README.md.  METHOD=latin|morris, SAMPLES, WEEKS override the design.
set -euo pipefail
cd "$(dirname "$0")/../.."
METHOD=${METHOD:-latin}
design=sensitivity_lhs
[ "$METHOD" = morris ] && design=sensitivity_morris
args=(--out "outputs/experiments/sensitivity_$METHOD" --samples "${SAMPLES:-48}")
[ "$METHOD" = sobol ] && args+=(--method sobol)
[ -n "${WEEKS:-}" ] && args+=(--weeks "$WEEKS")
.venv/bin/sim sensitivity "$design" "${args[@]}"
