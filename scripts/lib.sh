# Shared by the scripts in this folder: locate the interpreters and the project's tool environments.
# Nothing here writes outside the repository except uv's and npm's caches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.9"
export UV_PYTHON_DOWNLOADS=never
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"

# Prints the path of a python3.X interpreter: PATH first, then pyenv's versions, then uv's managed ones.
find_python() {
  local want="$1" candidate root
  # A pyenv shim may stand on PATH without the version being selected: only a name that runs counts.
  if candidate="$(command -v "python$want" 2>/dev/null)" && "$candidate" -c '' >/dev/null 2>&1; then
    echo "$candidate"; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    for candidate in $(ls -d "$root"/versions/"$want".* 2>/dev/null | sort -V -r); do
      if [ -x "$candidate/bin/python$want" ]; then echo "$candidate/bin/python$want"; return 0; fi
    done
  fi
  echo "python$want was not found on PATH or under pyenv; install Python $want first" >&2
  return 1
}

# A uv of a known version in .tools/uv, installed with whatever python3 the machine has.
ensure_uv() {
  UV="$ROOT/.tools/uv/bin/uv"
  if [ ! -x "$UV" ] || [ "$("$UV" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    local base
    base="$(command -v python3)"
    "$base" -m venv "$ROOT/.tools/uv"
    "$ROOT/.tools/uv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
}

# The project's environment (.venv, Python 3.13) exactly as uv.lock pins it.
ensure_project_env() {
  ensure_uv
  PYTHON313="$(find_python 3.13)"
  "$UV" sync --frozen --quiet --python "$PYTHON313"
  # sam build looks for python3.13 on PATH: the project's venv provides one.
  export PATH="$ROOT/.venv/bin:$PATH"
}

# The SAM CLI in its own environment (.venv-sam): it pins old boto3, pydantic and click.
ensure_sam() {
  ensure_uv
  local py
  py="$(find_python 3.13)"
  if [ ! -x "$ROOT/.venv-sam/bin/sam" ] || ! cmp -s "$ROOT/tools/sam-requirements.txt" "$ROOT/.venv-sam/.installed"; then
    "$UV" venv --quiet --allow-existing --python "$py" "$ROOT/.venv-sam"
    VIRTUAL_ENV="$ROOT/.venv-sam" "$UV" pip install --quiet --require-hashes -r "$ROOT/tools/sam-requirements.txt"
    cp "$ROOT/tools/sam-requirements.txt" "$ROOT/.venv-sam/.installed"
  fi
  SAM="$ROOT/.venv-sam/bin/sam"
}

# The Node projects (the CDK example, the TypeScript client): `npm ci` from each lock file, again only
# when the lock file changed. Without node and npm on PATH they are left out (their tests skip, or fail
# in CI).
NODE_PROJECTS=("examples/cdk-sbt" "clients/typescript")
ensure_node_projects() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not on PATH: the CDK example and the TypeScript client are not installed" >&2
    return 0
  fi
  local project
  for project in "${NODE_PROJECTS[@]}"; do
    if ! cmp -s "$ROOT/$project/package-lock.json" "$ROOT/$project/node_modules/.installed-lock.json"; then
      (cd "$ROOT/$project" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
      cp "$ROOT/$project/package-lock.json" "$ROOT/$project/node_modules/.installed-lock.json"
    fi
  done
}
