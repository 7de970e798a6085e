#!/usr/bin/env bash
# Checks that every link in README.md and docs/*.md resolves inside the repository: the file exists, stays
# under the repository's root, and a #fragment names a heading of that file. Prints each broken link and
# exits 1 when there is any. The test command runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - README.md docs/*.md <<'PY'
import os, re, sys

root = os.path.realpath(".")

def slug(heading):
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")

def anchors(path):
    with open(path, encoding="utf-8") as handle:
        text = re.sub(r"```.*?```", "", handle.read(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}

broken = []
for source in sys.argv[1:]:
    with open(source, encoding="utf-8") as handle:
        text = re.sub(r"```.*?```", "", handle.read(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for match in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = match.group(1)
        if re.match(r"^[a-z]+:", target):
            broken.append(f"{source}: {target}: leaves the repository")
            continue
        path, _, fragment = target.partition("#")
        resolved = os.path.realpath(os.path.join(os.path.dirname(source), path)) if path else os.path.realpath(source)
        if not (resolved == root or resolved.startswith(root + os.sep)):
            broken.append(f"{source}: {target}: outside the repository")
        elif not os.path.exists(resolved):
            broken.append(f"{source}: {target}: no such file")
        elif fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
            broken.append(f"{source}: {target}: no heading #{fragment}")
print("\n".join(broken) if broken else f"links: every link in {len(sys.argv) - 1} pages resolves inside the repository")
sys.exit(1 if broken else 0)
PY
