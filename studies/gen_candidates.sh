#!/bin/bash
# Issue 33 selection candidates on fold 0 (meta rows warm-started from kbrd_gen_warm), the exact
# arguments ray_jobs.gen_table passes for --meta-row NAME:ccrs:KEYS.
cd "$(dirname "$0")/.."  # the repository root
REC=$(realpath runs/real/rec_hist/user/ccrs/fold0/best.pt)
COMMON="generator.word_dim=128 generator.ffn_dim=128 generator.max_context_tokens=128 dial_meta.max_task_samples=8 dial_meta.inner_lr=0.00087 dial_meta.outer_lr=0.00033 gen_train.patience=2 dial_meta.epochs=1"
run() {
  name=$1; shift
  [ -f runs/real/gen33/fold0/meta/$name/eval/result.json ] && return
  echo "== $name $(date +%T)"
  .venv/bin/python -m ray_jobs.train_generator --data runs/real/prepared --rec-ckpt $REC --fold 0 \
    --storage-path runs/real/gen33/fold0/meta --run-name $name --num-workers 2 --model ccrs \
    --init runs/real/gen33/fold0/kbrd_gen_warm/best.pt -q $COMMON "$@" gen_train.max_epochs=1
  echo "== $name done $(date +%T)"
}
run ccrs_user_bias generator.style_with_user_bias=true
run ccrs_separation generator.style_separation=1.0
run ccrs_user_bias_separation generator.style_with_user_bias=true generator.style_separation=1.0
