#!/usr/bin/env bash
# Download the official "UCI HAR Dataset" (v1.0, CC BY 4.0, Anguita et al. 2013) into data/.
#
# Usage: bash data/download_uci_har.sh
# Resumable (curl -C -); the archive is checked against UCI_HAR_SHA256 when given, and the extracted
# label, subject and feature-name files always against data/uci_har.sha256 (the official files' hashes).
# Afterwards `python data/prepare_har.py --source official` builds the cache. Overrides for mirrors/tests:
#   UCI_HAR_URL, UCI_HAR_SHA256, UCI_HAR_CHECKSUMS (a sha256sum list), MTSSL_DATA_DIR (default: data/).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data_dir="${MTSSL_DATA_DIR:-$here}"
url="${UCI_HAR_URL:-https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip}"
checksums="${UCI_HAR_CHECKSUMS:-$here/uci_har.sha256}"
archive="$data_dir/downloads/uci_har.zip"
target="$data_dir/UCI HAR Dataset"
python="${PYTHON:-python3}"

fail() { echo "error: $*" >&2; exit 1; }

if [ -d "$target" ] && (cd "$target" && sha256sum --quiet -c "$checksums" >/dev/null 2>&1); then
  echo "already there and verified: $target"; exit 0
fi
mkdir -p "$data_dir/downloads"
echo "downloading $url"
# -C - resumes a partial archive left by an interrupted run
if ! curl --fail --location --retry 3 --connect-timeout 20 -C - --progress-bar -o "$archive" "$url"; then
  fail "could not download $url (offline? the partial file $archive is kept and resumed next time). Without a network, the offline default source 'hapt' needs no download."
fi
if [ -n "${UCI_HAR_SHA256:-}" ]; then
  echo "$UCI_HAR_SHA256  $archive" | sha256sum --quiet -c - >/dev/null 2>&1 \
    || { rm -f "$archive"; fail "checksum mismatch for $archive (removed; run again to download it afresh)"; }
fi

work="$(mktemp -d "$data_dir/downloads/extract.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$python" -m zipfile -e "$archive" "$work" || { rm -f "$archive"; fail "$archive is not a valid zip (removed; run again)"; }
# the UCI page's archive wraps the dataset in a second zip
inner="$(find "$work" -maxdepth 1 -name '*.zip' | head -n 1)"
if [ -n "$inner" ]; then "$python" -m zipfile -e "$inner" "$work" || fail "$inner inside $archive is not a valid zip"; fi
[ -d "$work/UCI HAR Dataset" ] || fail "$archive has no 'UCI HAR Dataset' folder: not the UCI HAR archive"
(cd "$work/UCI HAR Dataset" && sha256sum --quiet -c "$checksums") \
  || fail "the extracted files do not match the official ones listed in $checksums"
rm -rf "$target"
mv "$work/UCI HAR Dataset" "$target"
echo "UCI HAR Dataset ready in $target"
echo "next: python data/prepare_har.py --source official"
