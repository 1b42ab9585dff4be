#!/usr/bin/env bash
# Submit a ccrs entry point to a Ray cluster with the development runtime env:
#
#   cluster/submit.sh [--address http://HEAD:8265] [--no-wait] -- python -m ray_jobs.pipeline --preset paper \
#       --storage-path s3://my-bucket/ccrs
#
# For drivers that take --run-name (train_recommender, train_generator, tune) and were given none, a
# stable one is derived from the command line (sha1 of the arguments), never from a clock, so
# submitting the same command again resumes the same run. The run name is also recorded as job
# metadata. The address defaults to $RAY_ADDRESS, then http://127.0.0.1:8265.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
address="${RAY_ADDRESS:-http://127.0.0.1:8265}"
wait_flag=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) address="$2"; shift 2 ;;
    --no-wait) wait_flag=(--no-wait); shift ;;
    --) shift; break ;;
    *) echo "submit.sh: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: cluster/submit.sh [--address URL] [--no-wait] -- python -m ray_jobs.pipeline ARGS..." >&2; exit 2; }

cmd=("$@")
run_name=""
for ((i = 0; i < ${#cmd[@]}; i++)); do
  [ "${cmd[$i]}" = "--run-name" ] && run_name="${cmd[$((i + 1))]:-}"
done
if [ -z "$run_name" ]; then
  run_name="ccrs-$(printf '%s\0' "${cmd[@]}" | sha1sum | cut -c1-10)"
  case " ${cmd[*]} " in
    *" ray_jobs.train_recommender "*|*" ray_jobs.train_generator "*|*" ray_jobs.tune "*) cmd+=(--run-name "$run_name") ;;
  esac
fi
echo "submit.sh: run name $run_name" >&2
exec ray job submit --address "$address" --runtime-env "$here/runtime_env.yaml" --working-dir "$here/.." \
  --metadata-json "{\"run_name\": \"$run_name\"}" "${wait_flag[@]}" -- "${cmd[@]}"
