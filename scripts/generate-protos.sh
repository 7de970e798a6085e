#!/usr/bin/env bash
# Regenerates Sources/OTLP/Generated from Protos/: installs protoc (Debian's protobuf-compiler), builds
# protoc-gen-swift from the swift-protobuf version Package.resolved pins (once, in .build/protoc-gen-swift), and runs
# protoc over every .proto file. Commit what it writes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages protobuf-compiler git

version=$(grep -A6 '"identity" : "swift-protobuf"' Package.resolved | sed -n 's/.*"version" : "\(.*\)".*/\1/p')
[ -n "$version" ] || { echo "swift-protobuf is not in Package.resolved" >&2; exit 1; }
plugin_dir=.build/protoc-gen-swift/$version
if [ ! -x "$plugin_dir/bin/protoc-gen-swift" ]; then
    swift package resolve >/dev/null
    rm -rf "$plugin_dir/src"
    mkdir -p "$plugin_dir"
    git clone -q --branch "$version" "$(git -C .build/checkouts/swift-protobuf remote get-url origin)" "$plugin_dir/src" 2>/dev/null \
        || cp -R .build/checkouts/swift-protobuf "$plugin_dir/src"
    (cd "$plugin_dir/src" && swift build -c release --product protoc-gen-swift >/dev/null)
    mkdir -p "$plugin_dir/bin"
    cp "$plugin_dir/src/.build/release/protoc-gen-swift" "$plugin_dir/bin/"
fi

out=Sources/OTLP/Generated
rm -rf "$out"
mkdir -p "$out"
(cd Protos && find . -name '*.proto' | sort | sed 's|^\./||') | xargs protoc --proto_path=Protos \
    --plugin=protoc-gen-swift="$plugin_dir/bin/protoc-gen-swift" \
    --swift_out="$out" --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores
# The generator's pointers to its own documentation and issues are the only text that would leave the repository.
sed -i -e '/For information on using the generated types/d' -e '\|//   https://github.com/apple/swift-protobuf/|d' \
    -e 's| *https://github.com/apple/swift-protobuf/issues/[0-9]*||g' "$out"/*.swift
echo "generated with protoc $(protoc --version | cut -d' ' -f2) and protoc-gen-swift $version:"
ls "$out"
