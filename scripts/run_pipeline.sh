#!/usr/bin/env bash
# Run the crm-mapreduce pipeline from cron or by hand: one line of log per stage, a
# non-zero exit status when any stage fails. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: run_pipeline.sh [-r RUNNER] [-i INPUT]... [-o OUTPUT_ROOT] [options]

Runs every stage of crm-mapreduce (built-in data or INPUT -> RFM -> RFM segments ->
baskets -> K-Means segments -> sales series -> forecasts -> churn -> CLV) and publishes the
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
      --forecast-method M   select (ARIMA, ETS, Theta or seasonal naive by backtest) or
                            arima (the ARIMA grid by AIC)          (default: select)
      --forecast-processes N  processes fitting the forecasts      (default: 2)
      --forecast-reconcile R  top-down (items add up to the total) or none
                            (default: top-down)
      --churn-horizon-days N  churned = no purchase in N days after the cutoff (90)
      --churn-cutoff YYYY-MM-DD  churn training cutoff (default: latest date - horizon)
      --clv-horizon-days N  days of expected purchases and CLV         (default: 365)
      --discount-rate R     monthly discount rate of the CLV           (default: 0.01)
      --clv-holdout-end YYYY-MM-DD  with --as-of: holdout to this day, for holdout.csv
      --resume              keep the stages a failed run with the same options completed
      --mrjob-conf PATH     mrjob config file (default: mrjob's own lookup)
      --overwrite           replace existing results
  -h, --help                show this help

Environment:
  CRM_MR        the crm-mr command to run (default: crm-mr on PATH, else .venv/bin/crm-mr
                beside this script's checkout)
  CRM_LOCK_DIR  where the locks of hdfs:// output roots go, a private directory
                (default: ~/.cache/crm-mapreduce/locks, mode 700); a local root's
                lock is <parent>/.<name>.crm-lock beside it

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
    --sales-top-n|--horizon|--forecast-method|--forecast-processes|--forecast-reconcile|\
    --churn-horizon-days|\
    --churn-cutoff|\
    --clv-horizon-days|--discount-rate|--clv-holdout-end)
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

# One lock per output root, so two runs never write the same root.
#   local root: <parent>/.<name>.crm-lock beside it, by the resolved path (/x/out, /x/./out,
#               /x//out and a symlink to /x/out share one lock);
#   hdfs:// root: a lock in a private local directory (CRM_LOCK_DIR), keyed by the URI with
#               its path normalised.
# The lock file is never opened through a symbolic link, and never truncated.
refuse_lock() { log "refusing lock file $1: $2"; exit 2; }

lock_file_for() {
  local root=$1 path parent name key
  case "$root" in
    hdfs:*|HDFS:*)
      local authority=${root#*:} rest
      authority=${authority#//}
      rest=/${authority#*/}
      [[ "$authority" == */* ]] || rest=/
      authority=${authority%%/*}
      authority=${authority##*@}  # never a password in a file name
      path=$(realpath -m -s -- "$rest")
      key="hdfs://${authority,,}$path"
      private_lock_dir
      name=$(printf '%s' "$key" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-80)
      printf '%s/%s.%s.crm-lock' "$lock_dir" "$name" \
        "$(printf '%s' "$key" | sha256sum | cut -c1-16)"
      return ;;
    file://localhost/*) path=${root#file://localhost} ;;
    file://*) path=${root#file://} ;;
    file:*) path=${root#file:} ;;
    *) path=$root ;;
  esac
  path=$(realpath -m -- "$path")
  [[ "$path" != / ]] || { log "output root '$root' is the filesystem root"; exit 2; }
  parent=$(dirname -- "$path")
  name=$(basename -- "$path")
  mkdir -p -- "$parent" 2>/dev/null || { log "cannot create $parent for output root '$root'"; exit 2; }
  printf '%s/.%s.crm-lock' "$parent" "$name"
}

private_lock_dir() {
  lock_dir=${CRM_LOCK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crm-mapreduce/locks}
  mkdir -p -m 700 -- "$lock_dir"
  [[ ! -L "$lock_dir" && -O "$lock_dir" ]] ||
    refuse_lock "$lock_dir" "the lock directory is a symbolic link or not yours"
}

open_lock() {
  local file=$1
  if [[ -L "$file" ]]; then
    refuse_lock "$file" "it is a symbolic link"
  elif [[ -e "$file" && ! -f "$file" ]]; then
    refuse_lock "$file" "it is not a regular file"
  elif [[ -e "$file" ]]; then
    exec 9<"$file"  # an existing lock: read-only, so never truncated
  else
    set -C  # noclobber: created with O_EXCL, so a link planted meanwhile is not followed
    exec 9>"$file" || refuse_lock "$file" "it appeared while being created"
    set +C
  fi
  # the file opened is the one at that name, not a link swapped in after the checks
  [[ ! -L "$file" && "$(stat -L -c %d:%i /dev/fd/9)" == "$(stat -c %d:%i -- "$file")" ]] ||
    refuse_lock "$file" "it changed while being opened"
}

lock_file=$(lock_file_for "$output_root")
open_lock "$lock_file"
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
