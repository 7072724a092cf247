#!/usr/bin/env bash
# Builds target/debian/psdiff_*.deb with cargo-deb. The man page, the shell
# completions and the commented /etc/psdiff.toml are generated from the
# binary itself, so the package never ships stale copies.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release --locked
bin=target/release/psdiff
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets"
"$bin" man | gzip -9n > "$assets/psdiff.1.gz"
"$bin" completions bash > "$assets/psdiff.bash"
"$bin" completions zsh > "$assets/_psdiff"
"$bin" completions fish > "$assets/psdiff.fish"
{
    cat <<'HEADER'
# /etc/psdiff.toml: your psdiff rules and checks.
#
# psdiff's built-in rules apply after yours; they are shown below, commented
# out, as a reference (`psdiff config defaults` prints them too). Add your
# own [[rule]] and [[check]] tables here or in /etc/psdiff.d/*.toml, then
# run `psdiff config check`. Put `defaults = false` first to start empty.
#
HEADER
    sed -e 's/^/# /' -e 's/^# $/#/' etc/psdiff.toml
} > "$assets/psdiff.toml"
cat > "$assets/psdiff.d-README" <<'README'
Drop-in rule files for psdiff: every *.toml here is read after
/etc/psdiff.toml, in name order. See psdiff(1) and /usr/share/doc/psdiff.
README
cargo deb --no-build
ls -1 target/debian/*.deb
