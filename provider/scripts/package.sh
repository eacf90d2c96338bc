#!/usr/bin/env bash
# Packages terraform-provider-rotor the way the Terraform Registry and `terraform init` expect:
#
#   <out>/terraform-provider-rotor_<version>_<os>_<arch>.zip   one per --binary, holding
#                                                             terraform-provider-rotor_v<version>
#   <out>/terraform-provider-rotor_<version>_manifest.json     terraform-registry-manifest.json
#                                                             (plugin protocol 6.0)
#   <out>/terraform-provider-rotor_<version>_SHA256SUMS        sha256 of the zips and the manifest
#   <out>/terraform-provider-rotor_<version>_SHA256SUMS.sig    detached binary GPG signature, when a
#                                                             key is given (--gpg-key or GPG_KEY_ID)
#   <mirror>/registry.terraform.io/certifyclouds/rotor/<zip>    with --mirror: a filesystem_mirror in
#                                                             the packed layout
#
# Usage:
#   provider/scripts/package.sh --version 0.1.0 --out dist \
#       --binary linux_amd64=target/x86_64-unknown-linux-gnu/release/terraform-provider-rotor \
#       [--binary darwin_arm64=…] [--gpg-key KEYID] [--mirror DIR]
#
# Signing uses the gpg keyring in $GNUPGHOME (default ~/.gnupg); the release workflow imports the
# key from the repository secrets GPG_PRIVATE_KEY / GPG_PASSPHRASE (see docs/provider/index.md),
# the acceptance test a throwaway key. Needs zip, sha256sum and, to sign, gpg.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="" OUT="" MIRROR="" KEY="${GPG_KEY_ID:-}"
BINARIES=()
die() { echo "package.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --binary) BINARIES+=("$2"); shift 2 ;;
    --gpg-key) KEY="$2"; shift 2 ;;
    --mirror) MIRROR="$2"; shift 2 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ -n "$VERSION" ] || die "--version is required (e.g. 0.1.0, no leading v)"
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "--version $VERSION is not semver"
[ -n "$OUT" ] || die "--out is required"
[ "${#BINARIES[@]}" -gt 0 ] || die "at least one --binary <os>_<arch>=<path> is required"
command -v zip >/dev/null || die "zip is required (apt-get install zip)"
command -v sha256sum >/dev/null || die "sha256sum is required (coreutils)"

NAME="terraform-provider-rotor"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

files=()
for spec in "${BINARIES[@]}"; do
  target="${spec%%=*}"
  bin="${spec#*=}"
  [[ "$target" =~ ^[a-z0-9]+_[a-z0-9]+$ ]] || die "--binary $spec: expected <os>_<arch>=<path>, e.g. linux_amd64=target/release/$NAME"
  [ -f "$bin" ] || die "--binary $spec: $bin does not exist (build it first: cargo build --release -p $NAME)"
  zipname="${NAME}_${VERSION}_${target}.zip"
  exe="${NAME}_v${VERSION}"
  case "$target" in windows_*) exe="$exe.exe" ;; esac   # Terraform runs it only with .exe there
  mkdir -p "$WORK/$target"
  cp "$bin" "$WORK/$target/$exe"
  chmod 0755 "$WORK/$target/$exe"
  # -X: no extra attributes, so the zip (and its sha256) depends only on the binary.
  (cd "$WORK/$target" && rm -f "$OUT/$zipname" && TZ=UTC touch -t 198001010000 "$exe" && zip -q -X "$OUT/$zipname" "$exe")
  files+=("$zipname")
done

manifest="${NAME}_${VERSION}_manifest.json"
cp "$HERE/terraform-registry-manifest.json" "$OUT/$manifest"
files+=("$manifest")

sums="${NAME}_${VERSION}_SHA256SUMS"
(cd "$OUT" && sha256sum "${files[@]}" > "$sums")

if [ -n "$KEY" ]; then
  command -v gpg >/dev/null || die "gpg is required to sign (apt-get install gnupg)"
  (cd "$OUT" && rm -f "$sums.sig" && gpg --batch --yes --local-user "$KEY" --detach-sign --output "$sums.sig" "$sums")
fi

if [ -n "$MIRROR" ]; then
  dest="$MIRROR/registry.terraform.io/certifyclouds/rotor"
  mkdir -p "$dest"
  for f in "${files[@]}"; do
    case "$f" in *.zip) cp "$OUT/$f" "$dest/$f" ;; esac
  done
fi

echo "package.sh: wrote $OUT:"
(cd "$OUT" && ls -1 "${files[@]}" "$sums" $( [ -n "$KEY" ] && echo "$sums.sig" ))
