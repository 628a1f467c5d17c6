#!/usr/bin/env bash
# Install ComfyUI at the pinned commit, with its Python requirements. Idempotent: a checkout already at
# the pinned commit is kept, and requirements are reinstalled only when they (or the Python) change.
# A failed or interrupted install leaves nothing under the destination name.
#
#   scripts/install_comfyui.sh [DEST]          DEST defaults to $COMFYUI_PATH, then ./ComfyUI
#
# Used by cog.yaml (at image build time) and for local runs. Variables:
#   COMFYUI_REPO    where to fetch from (default: GitHub; a mirror URL or a local clone also works)
#   COMFYUI_COMMIT  the commit to install (default: the pinned one below; change it here, not there)
#   PYTHON          the Python whose environment gets the requirements (default: python3)
#   COMFYUI_SKIP_REQUIREMENTS=1   fetch the code only
set -euo pipefail

PINNED_COMMIT=a125cd84b054a57729b5eecab930ca9408719832  # ComfyUI v0.3.64, as recorded in tests/reference
repo=${COMFYUI_REPO:-https://github.com/comfyanonymous/ComfyUI.git}
commit=${COMFYUI_COMMIT:-$PINNED_COMMIT}
dest=${1:-${COMFYUI_PATH:-ComfyUI}}
python=${PYTHON:-python3}

say() { printf '[install_comfyui] %s\n' "$*"; }
fail() { printf '[install_comfyui] error: %s\n' "$*" >&2; exit 1; }

current_commit() { git -C "$dest" rev-parse HEAD 2>/dev/null || true; }

fetch_into() {  # fetch $commit from $repo into a fresh directory $1
  git init -q "$1"
  git -C "$1" remote add origin "$repo"
  if ! git -C "$1" fetch -q --depth 1 origin "$commit" 2>"$1.fetch-error"; then
    # Servers that refuse fetching a commit by id (and local clones) still serve a full fetch.
    if ! git -C "$1" fetch -q origin 2>>"$1.fetch-error" || ! git -C "$1" cat-file -e "$commit^{commit}" 2>/dev/null; then
      local why
      why=$(tail -n 3 "$1.fetch-error" | tr '\n' ' ')
      rm -rf "$1" "$1.fetch-error"
      fail "could not fetch ComfyUI commit $commit from $repo ($why). This step needs network access to that repository: run it where GitHub is reachable, or set COMFYUI_REPO to a reachable mirror or local clone. Nothing was installed at $dest."
    fi
  fi
  rm -f "$1.fetch-error"
  git -C "$1" -c advice.detachedHead=false checkout -q "$commit"
}

if [ "$(current_commit)" = "$commit" ]; then
  say "ComfyUI already at $commit in $dest"
elif [ -d "$dest/.git" ]; then
  if [ -n "$(git -C "$dest" status --porcelain --untracked-files=no)" ]; then
    fail "$dest is a ComfyUI checkout at $(current_commit) with local changes; commit or discard them, or move it away, then run this again."
  fi
  say "moving $dest from $(current_commit) to $commit"
  git -C "$dest" fetch -q --depth 1 "$repo" "$commit" || git -C "$dest" fetch -q "$repo" \
    || fail "could not fetch ComfyUI commit $commit from $repo; $dest is unchanged."
  git -C "$dest" -c advice.detachedHead=false checkout -q "$commit"
elif [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
  fail "$dest exists and is not a git checkout of ComfyUI; move it away or pass another destination."
else
  say "fetching ComfyUI $commit from $repo into $dest"
  staging="$dest.partial.$$"
  trap 'rm -rf "$staging" "$staging.fetch-error"' EXIT
  rm -rf "$staging"
  fetch_into "$staging"
  rmdir "$dest" 2>/dev/null || true
  mv "$staging" "$dest"
  trap - EXIT
fi

if [ "${COMFYUI_SKIP_REQUIREMENTS:-0}" = 1 ]; then
  say "skipping requirements (COMFYUI_SKIP_REQUIREMENTS=1)"
  exit 0
fi
[ -f "$dest/requirements.txt" ] || fail "$dest/requirements.txt is missing: is $dest really a ComfyUI checkout?"
stamp="$dest/.requirements-installed"
want="$(sha256sum "$dest/requirements.txt" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.executable)')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "requirements already installed for $("$python" -c 'import sys; print(sys.executable)')"
  exit 0
fi
say "installing ComfyUI's requirements with $python"
"$python" -m pip install -r "$dest/requirements.txt" \
  || fail "pip could not install $dest/requirements.txt (see above). Without network access to PyPI this step cannot complete."
printf '%s\n' "$want" > "$stamp"
say "done: ComfyUI $commit in $dest"
