#!/usr/bin/env bash
# Builds and installs libringline (capi/): the shared and static library,
# include/ringline.h, and ringline.pc for pkg-config.
#
#   scripts/install-capi.sh                 # PREFIX=/usr/local
#   PREFIX=$HOME/.local scripts/install-capi.sh
#   PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --cflags --libs ringline
#
# Programs keep including <liburing.h> (Debian: apt-get install liburing-dev)
# and link with $(pkg-config --libs ringline) instead of -luring.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
LIBDIR=${LIBDIR:-$PREFIX/lib}
PROFILE=${PROFILE:-release}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

# BUILT_DIR: install the libraries already built there (tests use it) instead
# of building.
if [ -n "${BUILT_DIR:-}" ]; then
    OUT=$BUILT_DIR
elif [ "$PROFILE" = release ]; then
    cargo build --release -p ringline-capi
    OUT="$TARGET_DIR/$PROFILE"
else
    cargo build -p ringline-capi
    OUT="$TARGET_DIR/$PROFILE"
fi

install -d "$LIBDIR" "$LIBDIR/pkgconfig" "$PREFIX/include"
install -m 0755 "$OUT/libringline.so" "$LIBDIR/libringline.so.$VERSION"
ln -sf "libringline.so.$VERSION" "$LIBDIR/libringline.so.0"
ln -sf "libringline.so.$VERSION" "$LIBDIR/libringline.so"
install -m 0644 "$OUT/libringline.a" "$LIBDIR/libringline.a"
install -m 0644 capi/include/ringline.h "$PREFIX/include/ringline.h"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@LIBDIR@|$LIBDIR|" -e "s|@VERSION@|$VERSION|" \
    capi/ringline.pc.in > "$LIBDIR/pkgconfig/ringline.pc"
chmod 0644 "$LIBDIR/pkgconfig/ringline.pc"

echo "installed libringline $VERSION under $PREFIX"
echo "  pkg-config: PKG_CONFIG_PATH=$LIBDIR/pkgconfig pkg-config --cflags --libs ringline"
if [ "$PREFIX" = /usr/local ] || [ "$PREFIX" = /usr ]; then
    command -v ldconfig >/dev/null && { ldconfig 2>/dev/null || true; }
fi
