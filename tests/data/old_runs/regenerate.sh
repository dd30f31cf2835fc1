#!/usr/bin/env bash
# Rebuild the fixtures of tests/data/old_runs (README.md): one tiny `raydaug train` run per commit, by that
# commit's own code (a git worktree first on PYTHONPATH, run outside the repository so the editable install
# does not shadow it), keeping config.json, parquet/ and a trimmed checkpoints/state.pt.
# Usage: tests/data/old_runs/regenerate.sh [PYTHON]   (default: the repository's .venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
python="${1:-$repo/.venv/bin/python}"
tiny=(--set dataset=digits --set image_size=16 --set ngf=4 --set noise_dim=8 --set train_per_class=3
      --set val_per_class=3 --set batch_size=10 --set epochs=2 --set eval_every=1 --set checkpoint_every=1
      --set device=cpu)
# label  commit  extra --set (none: "-")
fixtures=(
  "711d378_before_teacher 711d378 -"
  "58f1969_flow_bound 58f1969 -"
  "41779b3_replay 41779b3 -"
  "7374809_c_views 7374809 -"
  "7374809_c_views_2 7374809 c_views=2"
  "f2a1183_unversioned f2a1183 -"
)
work="$(mktemp -d)"
trap 'for tree in "$work"/tree_*; do git -C "$repo" worktree remove --force "$tree"; done; rm -rf "$work"' EXIT
for line in "${fixtures[@]}"; do
  read -r label rev extra <<<"$line"
  tree="$work/tree_$label"
  git -C "$repo" worktree add --detach "$tree" "$rev" >/dev/null
  extra_args=()
  [[ "$extra" != "-" ]] && extra_args=(--set "$extra")
  run="$work/oldrun_$label"
  (cd "$work" && PYTHONPATH="$tree" "$python" -c 'import raydaug, sys; assert raydaug.__file__.startswith(sys.argv[1])' "$tree" \
     && PYTHONPATH="$tree" "$python" -m raydaug train "${tiny[@]}" "${extra_args[@]}" --out "$run" >/dev/null)
  rm -rf "${here:?}/$label"
  mkdir -p "$here/$label/checkpoints"
  cp "$run/config.json" "$here/$label/"
  cp -r "$run/parquet" "$here/$label/"
  (cd "$work" && PYTHONPATH="$tree" "$python" "$here/trim_checkpoint.py" "$run/checkpoints/state.pt" \
     "$here/$label/checkpoints/state.pt")
  echo "$label: $(du -sh "$here/$label" | cut -f1)"
done
