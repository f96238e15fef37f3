#!/usr/bin/env bash
# The whole test suite: ansible-test sanity (zero ignores), ansible-lint (production), galaxy-importer, pytest.
# Usage: scripts/test.sh [sanity|lint|galaxy|pytest]...   (default: all, in that order)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin="$repo/.venv/bin"
export PATH="$bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$repo/.venv/collections"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
# Tests stay in their lane: nothing is written outside the checkout and the system temp dir. Ansible's home
# (galaxy cache, roles, the collection copy ansible-lint installs, ~/.ansible/tmp) and every XDG cache go under
# .build/. ansible-test and ansible-lint also write below ~ by name (~/.ansible/test/venv, ~/.ansible/test/cache,
# ~/.ansible/collections), so they run with HOME=.build/home; configuration is still read from the real
# ~/.config (pip's index settings).
lane="$repo/.build/lane"
export XDG_CONFIG_HOME="${XDG_CONFIG_HOME:-$HOME/.config}"
export ANSIBLE_HOME="$lane/ansible-home"
export ANSIBLE_LOCAL_TEMP="$lane/ansible-home/tmp"
export ANSIBLE_GALAXY_CACHE_DIR="$lane/ansible-home/galaxy_cache"
export XDG_CACHE_HOME="$lane/cache"
mkdir -p "$lane/home" "$ANSIBLE_LOCAL_TEMP" "$XDG_CACHE_HOME"
in_lane() { HOME="$lane/home" "$@"; }
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(sanity lint galaxy pytest)
failed=()

run_sanity() {
    if ls "$repo"/tests/sanity/ignore-*.txt >/dev/null 2>&1; then
        echo "tests/sanity has ignore files: the bar is zero ignores" >&2
        return 1
    fi
    # ansible-test needs the collection at ansible_collections/alexandria/ee: copy the tracked
    # and untracked-but-not-ignored files into a fresh tree.
    local build="$repo/.build/sanity"
    rm -rf "$build"
    local tree="$build/ansible_collections/alexandria/ee"
    mkdir -p "$tree"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard | \
        python3 -c 'import os,sys; sys.stdout.write("".join(p + "\0" for p in sys.stdin.read().split("\0") if p and os.path.exists(p)))' | \
        tar --null -T - -cf - | tar -xf - -C "$tree")
    offline="$repo/../shared/tools/ansible-test-offline.sh"
    if [ -x "$offline" ] || [ -f "$offline" ]; then
        PYTHON="$bin/python" in_lane bash "$offline" >/dev/null
    fi
    (cd "$tree" && git init -q && git add -A && \
        in_lane "$bin/ansible-test" sanity --venv --python "$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no)
}

run_lint() {
    (cd "$repo" && in_lane "$bin/ansible-lint" --profile production --strict)
}

run_galaxy() {
    # The checks Galaxy runs on upload: galaxy-importer on the built tarball, no errors and no warnings.
    local out="$repo/.build/galaxy"
    rm -rf "$out" && mkdir -p "$out"
    (cd "$repo" && in_lane "$bin/ansible-galaxy" collection build --force --output-path "$out" >/dev/null) || return 1
    local log="$out/importer.log"
    (cd "$out" && in_lane "$bin/python" -m galaxy_importer.main "$out"/alexandria-ee-*.tar.gz >"$log" 2>&1)
    local rc=$?
    grep -vE '^Loading ' "$log"
    if [ $rc -ne 0 ] || grep -qiE '^(WARNING|ERROR)|warning:|error:' "$log"; then
        echo "galaxy-importer reported errors or warnings" >&2
        return 1
    fi
}

run_pytest() {
    # Two workers, a test file each at a time (module-scoped labs are never started twice): most lab tests wait
    # on processes, so two run side by side on two cores. PYTEST_WORKERS=0 runs them in this process.
    local workers=${PYTEST_WORKERS:-2}
    local parallel=()
    [ "$workers" = "0" ] || parallel=(-n "$workers" --dist loadfile)
    (cd "$repo" && "$bin/python" -m pytest "${parallel[@]}" "${PYTEST_ARGS[@]}")
}
# Extra pytest arguments, space-separated (e.g. PYTEST_ARGS="-k lab -x").
read -r -a PYTEST_ARGS <<< "${PYTEST_ARGS:-}"

for step in "${steps[@]}"; do
    echo "=== $step ==="
    if ! "run_$step"; then
        failed+=("$step")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all passed: ${steps[*]}"
