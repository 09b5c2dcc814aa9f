#!/usr/bin/env bash
# Reproduces reports/digits-default: the README's main job (the embedded default config, scikit-learn's bundled
# digits, no download). Run from the repository root after installing gan-probe (pip install -c constraints.txt -e ".[fid]").
set -euo pipefail
rm -rf runs/digits-default                        # time it from scratch (stages are cached otherwise)
time gan-probe pipeline --out runs/digits-default --no-progress
rm -rf reports/digits-default/report && cp -r runs/digits-default/report reports/digits-default/report
