#!/usr/bin/env bash
# Score a lingvis language model with lm-evaluation-harness through `lingvis serve`.
#
#   scripts/lm_eval_smoke.sh [MODEL_DIR]
#
# Without MODEL_DIR a gpt-micro is pretrained on the built-in Shakespeare for a couple of minutes first.
# Needs `pip install "lm-eval[api]"` (tested with lm_eval 0.4.13). Runs offline: the task is a local JSONL
# file (tests/serve/lm_eval_task/), and lm-eval tokenizes through the server's /tokenize endpoint.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
PORT=${PORT:-8765}
WORK=$(mktemp -d)
MODEL=${1:-}

if [ -z "$MODEL" ]; then
  echo "no model given: pretraining gpt-micro on Shakespeare (about 2 minutes)" >&2
  "$PY" -m lingvis pretrain gpt --preset gpt-micro --max-minutes 2 --max-steps 1500 --eval-every 500 \
    --samples 0 --no-progress --out "$WORK/run" > "$WORK/pretrain.log"
  MODEL="$WORK/run"
fi

"$PY" -m lingvis serve --model "lm=$MODEL" --port "$PORT" --log-level warning &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
CONTEXT=$("$PY" - "$PORT" <<'PY'
import sys, time, httpx
url = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(300):
    try:
        print(httpx.get(f"{url}/v1/models").json()["data"][0]["context_length"])
        break
    except (httpx.HTTPError, KeyError):
        time.sleep(0.2)
else:
    sys.exit("the server did not start")
PY
)

mkdir -p "$WORK/tasks"
for f in "$ROOT"/tests/serve/lm_eval_task/*.yaml; do
  sed "s#test: smoke.jsonl#test: $ROOT/tests/serve/lm_eval_task/smoke.jsonl#" "$f" > "$WORK/tasks/$(basename "$f")"
done

HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 "$PY" -m lm_eval --model local-completions \
  --model_args "base_url=http://127.0.0.1:$PORT/v1/completions,model=lm,num_concurrent=8,max_length=$CONTEXT" \
  --tasks lingvis_smoke,lingvis_smoke_gen --include_path "$WORK/tasks" --output_path "$WORK/out"
echo "results and logs: $WORK" >&2
