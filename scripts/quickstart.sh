#!/usr/bin/env bash
# Set up (first time) and run the default scenario (baseline_2017 at 0.05 degrees).
# Outputs and plots land in outputs/baseline_2017/<date_time>/.  Extra args are Hydra overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sim run "$@"
