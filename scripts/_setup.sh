# Shared by scripts/test, scripts/demo and scripts/bench.py's wrapper: install what is missing, idempotently.
# shellcheck shell=bash

S3LOGFS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${S3LOGFS_VENV:-$S3LOGFS_ROOT/.venv}"

ensure_apt() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_venv() {
  local extra="$1"
  local stamp_hash
  stamp_hash=$(cat "$S3LOGFS_ROOT/setup.cfg" "$S3LOGFS_ROOT/pyproject.toml" | sha256sum | cut -c1-16)
  local stamp="$VENV/.s3logfs-$extra-$stamp_hash"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  if [ ! -f "$stamp" ]; then
    echo "installing s3logfs[$extra] into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$S3LOGFS_ROOT[$extra]" >&2
    touch "$stamp"
  fi
}
