#!/usr/bin/env bash
# `make lint`: ruff on the whole tree, then mypy on the packages below. Needs only `make deps-py`
# (no root); takes seconds. Settings live in pyproject.toml ([tool.ruff], [tool.mypy]).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# The packages mypy must find clean; add one here once it is.
TYPED=(kproxy.agent kproxy.netlink kproxy.userspace kproxy.rules kproxy.client kproxy.scheduler kproxy.kubelet kproxy.images kproxy.install kproxy.containerd)

# The mode backends are top-level folders installed as kproxy.<folder> (setup.py's package_dir;
# at run time the editable install's import hook maps them, which mypy cannot follow). So mypy
# reads a tree of symlinks laid out as installed, build/lint/kproxy, and the paths it prints are
# mapped back to the repository's.
backends=$($BIN/python -c 'import runpy; print(*runpy.run_path("kproxy/modes.py")["top_level_packages"]())')
tree=build/lint
rm -rf "$tree/kproxy"
mkdir -p "$tree/kproxy"
for entry in kproxy/*; do
    [[ $entry == */__pycache__ ]] || ln -s "$PWD/$entry" "$tree/kproxy/"
done
packages=()
for pkg in "${TYPED[@]}"; do packages+=(-p "$pkg"); done
for backend in $backends; do
    ln -s "$PWD/$backend" "$tree/kproxy/$backend"
    packages+=(-p "kproxy.$backend")
done

status=0  # both run, so one run shows all there is to fix
echo "ruff check ."
$BIN/ruff check --output-format concise . || status=1
echo "mypy ${packages[*]}"
(cd "$tree" && "$OLDPWD/$BIN/mypy" --config-file "$OLDPWD/pyproject.toml" "${packages[@]}") |
    sed -E "s#^kproxy/(${backends// /|})/#\\1/#" || status=1
exit $status
