#!/usr/bin/env bash
# Installs the rotor binary for the action (action.yml, step `install`).
#
# - ROTOR_INPUT_BINARY_PATH set: use that binary (a relative path is taken from the workspace, the
#   step's directory, and made absolute so `working-directory` does not break it; a bare name is
#   looked up on PATH).
# - Otherwise map RUNNER_OS/RUNNER_ARCH to a release target, download the release archive and
#   check its sha256 against .github/release-sums.txt, committed in the action's repository (so a
#   tag of the action pins the exact bytes it runs). The file lists every released version
#   (pre-releases too); ROTOR_INPUT_VERSION picks one, default the last one listed (the release
#   this commit was tagged for). No checksum, no binary.
# - Downloads from ROTOR_INPUT_DOWNLOAD_BASE when set; else from <server>/<action repository>/
#   releases/download, trying on GitHub Enterprise Server its own GITHUB_SERVER_URL first (an
#   actions-sync mirror) and then github.com (GitHub Connect); elsewhere github.com. The action
#   repository is read from GITHUB_ACTION_PATH (…/_actions/<owner>/<repo>/<ref>), because
#   `github.action_repository` is empty inside composite actions; a fork or mirror of the action
#   therefore downloads its own releases.
# - Verified binaries are kept in RUNNER_TOOL_CACHE (rotor/<version>/<target>) and reused.
# - Windows runners (Git Bash): no absolute path is ever handed to sha256sum or tar. GNU sha256sum
#   prints `\<hash>` for a name with a backslash (D:\a\_temp\…) and GNU tar reads `D:` as a remote
#   host; both run inside the download directory on relative names.
#
# Writes `bin=<absolute path>` and `version=<version>` to $GITHUB_OUTPUT.
set -euo pipefail

err() { # message: an error annotation (data escaped as the runner expects)
  local m="$1"
  m="${m//'%'/%25}"; m="${m//$'\r'/%0D}"; m="${m//$'\n'/%0A}"
  echo "::error title=rotor install::$m"
}

action_dir="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/../.." && pwd)}"
sums_file="$action_dir/.github/release-sums.txt"

if [ -n "${ROTOR_INPUT_BINARY_PATH:-}" ]; then
  p="$ROTOR_INPUT_BINARY_PATH"
  case "$p" in
    */* | *\\*) ;;
    *) if command -v "$p" >/dev/null 2>&1 && [ ! -e "$p" ]; then p="$(command -v "$p")"; fi ;;
  esac
  if [ ! -f "$p" ] || [ ! -x "$p" ]; then
    err "binary-path '$ROTOR_INPUT_BINARY_PATH' is not an executable file (relative paths are taken from $(pwd))"
    exit 1
  fi
  abs="$(cd "$(dirname "$p")" && pwd)/$(basename "$p")"
  echo "bin=$abs" >> "$GITHUB_OUTPUT"
  echo "version=" >> "$GITHUB_OUTPUT"
  echo "rotor: using $abs"
  exit 0
fi

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64)     target=x86_64-unknown-linux-musl ;;
  Linux/ARM64)   target=aarch64-unknown-linux-musl ;;
  macOS/X64)     target=x86_64-apple-darwin ;;
  macOS/ARM64)   target=aarch64-apple-darwin ;;
  Windows/X64)   target=x86_64-pc-windows-msvc ;;
  *)
    err "no rotor release for runner ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}: build it with 'cargo install --locked --git https://github.com/certifyclouds/rotor rotor' and pass binary-path"
    exit 1
    ;;
esac

# The versions listed for this target, in the file's order (oldest first).
listed_versions() {
  [ -f "$sums_file" ] || return 0
  awk -v t="$target" '
    /^[[:space:]]*#/ || NF < 2 { next }
    { f = $2; sub(/^\*/, "", f)
      suffix = "-" t ".tar.gz"
      if (substr(f, 1, 7) == "rotor-v" && length(f) > 7 + length(suffix) && substr(f, length(f) - length(suffix) + 1) == suffix)
        print substr(f, 8, length(f) - 7 - length(suffix)) }' "$sums_file"
}

version="${ROTOR_INPUT_VERSION:-}"
version="${version#v}"
if [ -z "$version" ]; then
  version="$(listed_versions | tail -n 1)"
fi
if [ -z "$version" ]; then
  err "no release is pinned in .github/release-sums.txt of this action version: use a released tag of the action (uses: certifyclouds/rotor@vX.Y.Z), or pass binary-path"
  exit 1
fi
case "$version" in
  *[!A-Za-z0-9.+-]*) err "version '$version' is not a release version (for example 0.2.0 or 0.3.0-rc.1)"; exit 1 ;;
esac

archive="rotor-v${version}-${target}.tar.gz"
expected="$(awk -v f="$archive" '!/^[[:space:]]*#/ && ($2 == f || $2 == "*"f) { print $1 }' "$sums_file" 2>/dev/null | head -n 1)"
if [ -z "$expected" ]; then
  known="$(listed_versions | tr '\n' ' ')"
  err "no pinned sha256 for $archive in .github/release-sums.txt of this action version (versions listed: ${known:-none}): use the action at tag v$version, or pass binary-path"
  exit 1
fi

# The action's repository: from GITHUB_ACTION_PATH (…/_actions/<owner>/<repo>/<ref>).
repo="${ROTOR_ACTION_REPOSITORY:-}"
if [ -z "$repo" ]; then
  norm="${action_dir//\\//}"
  case "$norm" in
    */_actions/*/*/*)
      rest="${norm##*/_actions/}"
      owner="${rest%%/*}"; rest="${rest#*/}"
      name="${rest%%/*}"
      if [ -n "$owner" ] && [ -n "$name" ]; then repo="$owner/$name"; fi
      ;;
  esac
fi
repo="${repo:-certifyclouds/rotor}"
# Where to look, in order: download-base alone when given; on GitHub Enterprise Server the
# server's own copy first (an actions-sync mirror keeps owner/repo), then github.com (GitHub
# Connect); elsewhere github.com. The checksum decides, whichever answers.
bases=()
if [ -n "${ROTOR_INPUT_DOWNLOAD_BASE:-}" ]; then
  bases+=("${ROTOR_INPUT_DOWNLOAD_BASE%/}")
else
  server="${GITHUB_SERVER_URL:-https://github.com}"
  server="${server%/}"
  if [ "$server" != "https://github.com" ]; then bases+=("$server/$repo/releases/download"); fi
  bases+=("https://github.com/$repo/releases/download")
fi

exe=""; if [ "$target" = "x86_64-pc-windows-msvc" ]; then exe=".exe"; fi
cache_root="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}"
# Git Bash on Windows: a POSIX form of C:\hostedtoolcache\… for the shell's own commands.
if command -v cygpath >/dev/null 2>&1; then cache_root="$(cygpath -u "$cache_root")"; fi
dest="$cache_root/rotor/$version/$target"
mkdir -p "$dest"
cd "$dest"
dest_abs="$(pwd)"

sha256_of() { # relative file name, from inside its directory
  local line
  if command -v sha256sum >/dev/null 2>&1; then
    line="$(sha256sum -- "$1")"
  else
    line="$(shasum -a 256 -- "$1")"
  fi
  line="${line#\\}"
  echo "${line%% *}"
}

if [ -x "./rotor$exe" ] && [ "$(cat .archive-sha256 2>/dev/null || true)" = "$expected" ]; then
  echo "rotor $version ($target) from the tool cache: archive sha256 $expected"
else
  rm -f "./rotor$exe" .archive-sha256 "$archive"
  got=""
  for base in "${bases[@]}"; do
    url="$base/v$version/$archive"
    echo "Downloading $url"
    if curl --fail --silent --show-error --location --retry 3 --retry-delay 2 --output "$archive" "$url"; then
      got="$url"
      break
    fi
  done
  if [ -z "$got" ]; then
    err "could not download $archive from ${bases[*]}: set download-base to a mirror of the releases, or pass binary-path"
    exit 1
  fi
  actual="$(sha256_of "$archive")"
  if [ "$actual" != "$expected" ]; then
    rm -f "$archive"
    err "checksum mismatch for $archive: expected $expected, got $actual; refusing to run it"
    exit 1
  fi
  tar -xzf "$archive"
  rm -f "$archive"
  chmod +x "./rotor$exe" 2>/dev/null || true
  echo "$expected" > .archive-sha256
  echo "rotor $version ($target) verified: archive sha256 $actual"
fi
echo "bin=$dest_abs/rotor$exe" >> "$GITHUB_OUTPUT"
echo "version=$version" >> "$GITHUB_OUTPUT"
