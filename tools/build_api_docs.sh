#!/usr/bin/env bash
# Build the API reference of the condanon package with pdoc into build/api/ (open build/api/index.html).
#
#     pip install ".[docs]" && tools/build_api_docs.sh [OUTPUT_DIR]        # PYTHON=.venv/bin/python to pick one
#
# Docstrings are Google style (``Args:`` sections); single backticks link to the named objects.
# pdoc follows a package's ``__all__``, which names no submodules here (``pdoc condanon`` alone would
# write one page), so every public module is listed explicitly. Importing them loads no model; the
# dp2 modules need PyTorch (the dp2 extra) and are skipped with a note without it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/api}"
python="${PYTHON:-python}"
modules=$("$python" - <<'PY'
import importlib
import importlib.util
import pkgutil

import condanon



def listed_by_parent(name: str) -> bool:
    """pdoc adds a submodule its package's ``__all__`` names (``identity.judge``) by itself."""
    parent, _, leaf = name.rpartition(".")
    return leaf in getattr(importlib.import_module(parent), "__all__", ())


names = ["condanon"] + [
    m.name
    for m in pkgutil.walk_packages(condanon.__path__, "condanon.")
    if not any(part.startswith("_") for part in m.name.split(".")) and not listed_by_parent(m.name)
]
if importlib.util.find_spec("torch") is None:
    import sys

    print("no PyTorch: the condanon.dp2 modules are left out", file=sys.stderr)
    names = [n for n in names if not n.startswith("condanon.dp2")]
print(" ".join(names))
PY
)
rm -rf "$out"
# shellcheck disable=SC2086  # one word per module
"$python" -m pdoc $modules -o "$out" --docformat google
echo "API reference written to $out/index.html ($(wc -w <<<"$modules") modules)"
