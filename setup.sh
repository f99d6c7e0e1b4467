#!/usr/bin/env bash
# setup.sh [--dev] — create or refresh the project's virtual environment (.venv), idempotently.
#
#  * torch: if the environment already has a torch (say a CUDA build you installed first with
#    `python3 -m venv .venv && .venv/bin/pip install torch ...`), it is pinned as it is and left
#    alone; otherwise torch==2.13.0 is installed first, so that pip never resolves an unpinned
#    torch (which would pull the newest release and gigabytes of CUDA packages on a CPU machine).
#  * the project is installed in editable mode with its dependencies, under that torch pin;
#    --dev adds the test tools.
#  * a stamp file skips pip entirely when nothing changed, so running it again costs < 1 s.
set -euo pipefail
cd "$(dirname "$0")"

extras=""
case "${1:-}" in
  "") ;;
  --dev) extras="[dev]" ;;
  *) echo "setup.sh: unknown option '$1'; accepted: --dev" >&2; exit 2 ;;
esac

venv=${VENV:-.venv}
torch_default=2.13.0   # CPU build on the project's machines; a GPU user installs their own first
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip_install() {  # quiet pip; the machine's pip.conf warnings about absent index folders are noise
  "$py" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

stamp="$venv/.dl-foundations-setup"   # "<hash of pyproject.toml + setup.sh> <extras>"
hash=$(cat pyproject.toml setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then
  read -r old_hash old_extras < "$stamp" || true
  # up to date when nothing changed and what was installed covers what is asked ([dev] ⊇ none)
  if [ "$old_hash" = "$hash" ] && { [ "${old_extras:-}" = "$extras" ] || [ "${old_extras:-}" = "[dev]" ]; }; then
    echo "setup: $venv is up to date"
    exit 0
  fi
fi

installed=$("$py" -c "import torch; print(torch.__version__)" 2>/dev/null || true)
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
if [ -n "$installed" ]; then
  echo "setup: keeping the installed torch $installed"
  echo "torch==$installed" > "$constraints"
else
  echo "setup: installing torch==$torch_default"
  pip_install "torch==$torch_default"
  echo "torch==$torch_default" > "$constraints"
fi

echo "setup: installing dl-foundations$extras and its dependencies"
pip_install -c "$constraints" -e ".$extras"
echo "$hash $extras" > "$stamp"
echo "setup: done ($("$py" -c "import torch; print('torch', torch.__version__)"))"
