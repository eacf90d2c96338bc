#!/usr/bin/env bash
# Installs the rotor binary for the action (action.yml, step `install`).
#
# - ROTOR_INPUT_BINARY_PATH set: use that binary as is.
# - Otherwise map RUNNER_OS/RUNNER_ARCH to a release target, download the release archive and
#   check its sha256 against .github/release-sums.txt, committed in the action's repository (so a
#   tag of the action pins the exact bytes it runs). No checksum, no binary.
#
# Writes `bin=<path>` to $GITHUB_OUTPUT.
set -euo pipefail

action_dir="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/../.." && pwd)}"
sums_file="$action_dir/.github/release-sums.txt"

if [ -n "${ROTOR_INPUT_BINARY_PATH:-}" ]; then
  if [ ! -x "$ROTOR_INPUT_BINARY_PATH" ]; then
    echo "::error title=rotor::binary-path '$ROTOR_INPUT_BINARY_PATH' is not an executable file"
    exit 1
  fi
  echo "bin=$ROTOR_INPUT_BINARY_PATH" >> "$GITHUB_OUTPUT"
  exit 0
fi

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64)     target=x86_64-unknown-linux-musl ;;
  Linux/ARM64)   target=aarch64-unknown-linux-musl ;;
  macOS/X64)     target=x86_64-apple-darwin ;;
  macOS/ARM64)   target=aarch64-apple-darwin ;;
  Windows/X64)   target=x86_64-pc-windows-msvc ;;
  *)
    echo "::error title=rotor::no rotor release for runner ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}: build it with 'cargo install --locked --git https://github.com/certifyclouds/rotor rotor' and pass binary-path"
    exit 1
    ;;
esac

version="${ROTOR_INPUT_VERSION:-}"
version="${version#v}"
if [ -z "$version" ]; then
  # The pinned release: the version of the first archive listed in the sums file.
  version="$(grep -v '^#' "$sums_file" 2>/dev/null | sed -n 's/.*rotor-v\([^-]*\)-.*/\1/p' | head -n 1 || true)"
fi
if [ -z "$version" ]; then
  echo "::error title=rotor::no release is pinned in .github/release-sums.txt of this action version: use a released tag of the action (uses: certifyclouds/rotor@vX.Y.Z), or pass binary-path"
  exit 1
fi

archive="rotor-v${version}-${target}.tar.gz"
expected="$(awk -v f="$archive" '$2 == f || $2 == "*"f { print $1 }' "$sums_file" 2>/dev/null | head -n 1)"
if [ -z "$expected" ]; then
  echo "::error title=rotor::no pinned sha256 for $archive in .github/release-sums.txt: use the action at tag v$version, or pass binary-path"
  exit 1
fi

repo="${ROTOR_ACTION_REPOSITORY:-}"
repo="${repo:-certifyclouds/rotor}"
server="${GITHUB_SERVER_URL:-https://github.com}"
url="$server/$repo/releases/download/v$version/$archive"
dest="${RUNNER_TEMP:-/tmp}/rotor-$version-$target"
mkdir -p "$dest"

echo "Downloading $url"
curl --fail --silent --show-error --location --retry 3 --retry-delay 2 --output "$dest/$archive" "$url"

if command -v sha256sum >/dev/null 2>&1; then
  actual="$(sha256sum "$dest/$archive" | awk '{print $1}')"
else
  actual="$(shasum -a 256 "$dest/$archive" | awk '{print $1}')"
fi
if [ "$actual" != "$expected" ]; then
  echo "::error title=rotor::checksum mismatch for $archive: expected $expected, got $actual; refusing to run it"
  exit 1
fi

tar -xzf "$dest/$archive" -C "$dest"
bin="$dest/rotor"
if [ "$target" = "x86_64-pc-windows-msvc" ]; then bin="$dest/rotor.exe"; fi
chmod +x "$bin" 2>/dev/null || true
echo "rotor $version ($target) verified: sha256 $actual"
echo "bin=$bin" >> "$GITHUB_OUTPUT"
