#!/usr/bin/env bash
# Install ComfyUI at the pinned commit, with its Python requirements. Idempotent: a checkout already at
# the pinned commit is kept, and requirements are reinstalled only when they (or the Python, or the kept
# torch set) change. A failed or interrupted install leaves nothing under the destination name.
#
#   scripts/install_comfyui.sh [DEST]          DEST defaults to $COMFYUI_PATH, then ./ComfyUI
#
# Used by cog.yaml (at image build time) and for local runs. Variables:
#   COMFYUI_REPO    where to fetch from (default: GitHub; a mirror URL or a local clone also works)
#   COMFYUI_COMMIT  the commit to install (default: the pinned one below; change it here, not there)
#   PYTHON          the Python whose environment gets the requirements (default: python3)
#   COMFYUI_CONSTRAINTS  a pip constraints file applied on top of the kept torch set (default: none)
#   COMFYUI_SKIP_REQUIREMENTS=1   fetch the code only
#
# ComfyUI's requirements name torch, torchvision and torchaudio without versions. Whatever versions of
# them the Python already has are kept (passed to pip as constraints), so installing ComfyUI never swaps
# the torch build cog.yaml pinned (or a CPU build installed for local runs) for another one.
# A Python marked externally managed (PEP 668: Debian's, or one uv installed, as in Cog's newer base
# images) is installed into with --break-system-packages, as cog build itself does on such images.
set -euo pipefail

PINNED_COMMIT=a125cd84b054a57729b5eecab930ca9408719832  # ComfyUI v0.3.64, as recorded in tests/reference
KEPT_PACKAGES="torch torchvision torchaudio"
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
      fail "could not fetch ComfyUI commit $commit from $repo ($why). This step needs network access to that repository: run it where GitHub is reachable, or set COMFYUI_REPO to a reachable mirror or local clone (and COMFYUI_COMMIT to a commit it has). Nothing was installed at $dest."
    fi
  fi
  rm -f "$1.fetch-error"
  git -C "$1" -c advice.detachedHead=false checkout -q "$commit"
}

install_code() {
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
}

# What pip needs to be told about the target Python: prints "managed" when pip would refuse it under
# PEP 668 (the marker file in the stdlib folder of a Python that is not a virtual environment), then the
# installed versions of the kept packages as constraint lines.
inspect_python() {
  "$python" - "$KEPT_PACKAGES" <<'PY'
import importlib.metadata, os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
print("managed" if sys.prefix == sys.base_prefix and os.path.isfile(marker) else "unmanaged")
for name in sys.argv[1].split():
    try:
        print(f"{name}=={importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
        pass
PY
}

# The one-paragraph reason pip failed, read from its output ($1).
pip_failure() {
  local log=$1 reason
  if grep -q -i -E "externally-managed-environment" "$log"; then
    reason="pip refused to install into $python because it is externally managed (PEP 668) and this script did not see the marker; set PYTHON to a virtual environment's python, or report this."
  elif grep -q -i -E "ResolutionImpossible|conflicting dependencies|requested .*constraint" "$log"; then
    reason="a requirement of ComfyUI conflicts with the kept packages (constraints: $(tr '\n' ' ' < "$constraints")). Install a torch set that requirement accepts first, or set COMFYUI_CONSTRAINTS."
  elif grep -q -E "Max retries exceeded|Temporary failure in name resolution|Could not fetch URL|Network is unreachable|NewConnectionError|ProxyError" "$log"; then
    reason="pip could not reach the package index (see its output above): run this where PyPI (or your configured index) is reachable."
  elif grep -q -E "No matching distribution found|Could not find a version that satisfies" "$log"; then
    reason="no version of a requirement fits this Python and the kept packages (see pip's output above); check the Python version and the constraints: $(tr '\n' ' ' < "$constraints")."
  else
    reason="pip failed (its output is above)."
  fi
  printf '%s' "$reason"
}

install_requirements() {
  [ -f "$dest/requirements.txt" ] || fail "$dest/requirements.txt is missing: is $dest really a ComfyUI checkout?"
  "$python" -m pip --version >/dev/null 2>&1 \
    || fail "$python has no pip (python -m pip failed). Install pip for it (python -m ensurepip, or the distribution's python3-pip), or set PYTHON to a Python that has it."
  local facts managed executable pip_flags=()
  facts=$(inspect_python) || fail "$python could not be run to inspect its environment; set PYTHON to a working interpreter."
  managed=$(head -n 1 <<<"$facts")
  executable=$("$python" -c 'import sys; print(sys.executable)')
  constraints=$(mktemp)
  trap 'rm -f "$constraints" "$constraints.log"' EXIT
  tail -n +2 <<<"$facts" > "$constraints"
  if [ -n "${COMFYUI_CONSTRAINTS:-}" ]; then
    [ -f "$COMFYUI_CONSTRAINTS" ] || fail "COMFYUI_CONSTRAINTS=$COMFYUI_CONSTRAINTS is not a file."
    cat "$COMFYUI_CONSTRAINTS" >> "$constraints"
  fi
  if [ -s "$constraints" ]; then
    say "keeping $(tr '\n' ' ' < "$constraints")(pip constraints)"
  fi
  if ! grep -q '^torch==' "$constraints"; then
    say "warning: torch is not installed in $executable, so ComfyUI's requirements bring the newest torch from PyPI (on Linux x86_64 a CUDA build of several GB). For a CPU build, install one first, e.g.: $python -m pip install torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1 --index-url https://download.pytorch.org/whl/cpu"
  fi
  if [ "$managed" = managed ]; then
    say "$executable is marked externally managed (PEP 668): installing with --break-system-packages, as cog build does on such images"
    pip_flags+=(--break-system-packages)
  fi
  local stamp="$dest/.requirements-installed" want
  want="$(cat "$dest/requirements.txt" "$constraints" | sha256sum | cut -d' ' -f1) $executable"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "requirements already installed for $executable"
    return
  fi
  say "installing ComfyUI's requirements with $python"
  set +e
  "$python" -m pip install ${pip_flags[@]+"${pip_flags[@]}"} -c "$constraints" -r "$dest/requirements.txt" 2>&1 | tee "$constraints.log"
  local status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    fail "could not install $dest/requirements.txt into $executable: $(pip_failure "$constraints.log") The ComfyUI code at $dest is in place; run this again once that is fixed."
  fi
  printf '%s\n' "$want" > "$stamp"
}

install_code
if [ "${COMFYUI_SKIP_REQUIREMENTS:-0}" = 1 ]; then
  say "skipping requirements (COMFYUI_SKIP_REQUIREMENTS=1)"
  exit 0
fi
install_requirements
say "done: ComfyUI $commit in $dest"
