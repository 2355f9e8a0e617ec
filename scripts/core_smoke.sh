#!/usr/bin/env bash
# The core install alone (no extras) must import and run the core commands: a venv with torch and
# `pip install .` only, then `import lingvis`, a tiny `lingvis pretrain gpt` and `lingvis generate`.
set -euo pipefail
PY=${PY:-python3}
VENV=${CORE_VENV:-.venv-core}
[ -x "$VENV/bin/python" ] || $PY -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q -e .
for extra in sacrebleu fastapi uvicorn transformers pycocoevalcap sklearn; do
  if "$VENV/bin/python" -c "import $extra" 2>/dev/null; then
    echo "core venv unexpectedly has $extra" >&2; exit 1
  fi
done
"$VENV/bin/python" -c "import lingvis; print('import lingvis', lingvis.__version__)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/lingvis" pretrain gpt --out "$work/run" --preset gpt-nano --max-steps 12 --eval-every 6 \
  --eval-batches 2 --no-progress
"$VENV/bin/lingvis" generate --model "$work/run" --prompt "ROMEO:" --max-new-tokens 16 --seed 0
# an optional feature names the extra that installs it
if out=$("$VENV/bin/lingvis" serve --model "$work/run" 2>&1); then echo "serve ran without fastapi" >&2; exit 1; fi
echo "$out" | grep -q "lingvis\[serve\]" || { echo "serve error does not name the extra: $out" >&2; exit 1; }
echo "core install: ok"
