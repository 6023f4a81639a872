#!/usr/bin/env bash
# Run the crm-mapreduce pipeline from cron or by hand: one line of log per stage, a
# non-zero exit status when any stage fails. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: run_pipeline.sh [-r RUNNER] [-i INPUT]... [-o OUTPUT_ROOT] [options]

Runs every stage of crm-mapreduce (built-in data or INPUT -> RFM -> RFM segments ->
baskets -> K-Means segments -> sales series -> forecasts -> churn) and publishes the
results under OUTPUT_ROOT. Exits 0 when every stage succeeded, 1 when a job failed, 2 for
bad arguments or refused paths, 3 when another run holds the lock. After a failure, rerun
with the same options and --resume to keep the stages that completed.

  -r, --runner RUNNER       inline | local | hadoop | emr | spark   (default: local)
  -i, --input PATH          order-line file or directory, local or hdfs:// (repeatable;
                            default: generate the built-in synthetic data)
  -o, --output-root PATH    results root, local or hdfs://     (default: ./crm-output)
  -f, --input-format NAME   canonical | cdnow                  (default: canonical)
      --as-of YYYY-MM-DD    analysis date: later lines are left out, recency is measured
                            against it (default: latest purchase)
      --min-support S       baskets: least share of baskets of a frequent item set
      --min-confidence C    baskets: least confidence of a rule
      --top-n N             recommendations per item and per customer
      --k K                 K-Means segments: k, a range like 4-8 or a list 4,6,8
      --features LIST       K-Means features (default: recency,frequency,monetary)
      --kmeans-seed N       K-Means seed (default: 0)
      --sales-period D|W    sales series per day or week           (default: W)
      --sales-top-n N       items with a sales series of their own (default: 20)
      --horizon N           periods to forecast        (default: 28 days or 8 weeks)
      --forecast-processes N  processes fitting the forecasts      (default: 2)
      --churn-horizon-days N  churned = no purchase in N days after the cutoff (90)
      --churn-cutoff YYYY-MM-DD  churn training cutoff (default: latest date - horizon)
      --resume              keep the stages a failed run with the same options completed
      --mrjob-conf PATH     mrjob config file (default: mrjob's own lookup)
      --overwrite           replace existing results
  -h, --help                show this help

Environment:
  CRM_MR        the crm-mr command to run (default: crm-mr on PATH, else .venv/bin/crm-mr
                beside this script's checkout)
  CRM_LOCK_DIR  where the lock file goes, so two runs never write the same root
                (default: the system temp directory)

Example (cron, every night at 02:00):
  0 2 * * *  /opt/crm-mapreduce/scripts/run_pipeline.sh -r hadoop \
               -i hdfs:///data/orders/ -o hdfs:///crm/latest --overwrite >> /var/log/crm.log 2>&1
EOF
}

log() { printf '%s run_pipeline: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

runner=local
output_root=crm-output
input_format=canonical
extra=()
inputs=()

while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -r|--runner) runner=${2:?--runner needs a value}; shift 2 ;;
    -i|--input) inputs+=(--input "${2:?--input needs a value}"); shift 2 ;;
    -o|--output-root) output_root=${2:?--output-root needs a value}; shift 2 ;;
    -f|--input-format) input_format=${2:?--input-format needs a value}; shift 2 ;;
    --as-of) extra+=(--as-of "${2:?--as-of needs a value}"); shift 2 ;;
    --min-support|--min-confidence|--top-n|--k|--features|--kmeans-seed|--sales-period|\
    --sales-top-n|--horizon|--forecast-processes|--churn-horizon-days|--churn-cutoff)
      extra+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --mrjob-conf) extra+=(--mrjob-conf "${2:?--mrjob-conf needs a value}"); shift 2 ;;
    --overwrite|--resume) extra+=("$1"); shift ;;
    *) log "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done

case "$runner" in
  inline|local|hadoop|emr|spark) ;;
  *) log "runner '$runner' should be one of inline, local, hadoop, emr, spark"; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
crm_mr=${CRM_MR:-}
if [[ -z "$crm_mr" ]]; then
  if command -v crm-mr >/dev/null 2>&1; then
    crm_mr=crm-mr
  elif [[ -x "$here/../.venv/bin/crm-mr" ]]; then
    crm_mr="$here/../.venv/bin/crm-mr"
  else
    log "crm-mr not found: install the package (pip install .) or set CRM_MR"
    exit 2
  fi
fi

lock_dir=${CRM_LOCK_DIR:-${TMPDIR:-/tmp}}
lock_name=$(printf '%s' "$output_root" | tr -c 'A-Za-z0-9._-' '_')
lock_file="$lock_dir/crm-mapreduce.$lock_name.lock"
exec 9>"$lock_file"
if ! flock -n 9; then
  log "another run is writing $output_root (lock $lock_file); not starting"
  exit 3
fi

log "start: runner=$runner output_root=$output_root inputs=${#inputs[@]}"
start=$(date +%s)
status=0
"$crm_mr" run --runner "$runner" --output-root "$output_root" \
  --input-format "$input_format" "${inputs[@]}" "${extra[@]}" || status=$?
if ((status != 0)); then
  log "FAILED with exit status $status after $(( $(date +%s) - start )) s"
  exit "$status"
fi
log "done in $(( $(date +%s) - start )) s; results under $output_root"
