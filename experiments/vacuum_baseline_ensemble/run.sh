#!/usr/bin/env bash
# Baseline ensemble: see README.md.  Run from anywhere; outputs in outputs/experiments/.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${REPLICATES:-30}
OUT=outputs/experiments/vacuum_baseline_ensemble
SIM_SWEEP_TAG=vacuum_baseline .venv/bin/sim run -m scenario=baseline_2017 "replicate=range($N)" \
    geography=res_010 output.plots=false output.gif=false "hydra.sweep.dir=$OUT" || [ $? -eq 3 ]
.venv/bin/sim collect "$OUT" --map-dates 2017-11-01,2018-06-01,2019-06-01
