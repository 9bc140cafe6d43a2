#!/bin/sh
# tests/layering.sh: the layering of src/ (docs/design.md, "Layers"): a file
# may include its own folder and folders of a LOWER rank only. Fails, naming
# the file and the include, on anything else (an upward or sideways include),
# and on a folder missing from the table (a new folder gets a rank here).
# Usage: tests/layering.sh [SRC_DIR]   (default: src next to this script)
# Prints the folder-level include graph with --graph.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../src}
graph=0
[ "${1:-}" = "--graph" ] && { graph=1; src=$here/../src; }

rank() {
  case "$1" in
    util) echo 0 ;;
    proto | metrics) echo 1 ;;
    net) echo 2 ;;
    auth) echo 3 ;;
    identity) echo 4 ;;
    store) echo 5 ;;
    core) echo 6 ;;
    rest | cluster) echo 7 ;;
    admin | chat | cloud) echo 8 ;;
    root) echo 9 ;;
    main) echo 10 ;;
    *) echo "" ;;
  esac
}

bad=0
edges=""
for f in "$src"/*/*.c "$src"/*/*.h "$src"/main.c; do
  [ -f "$f" ] || continue
  rel=${f#"$src"/}
  case "$rel" in */*) from=${rel%%/*} ;; *) from=main ;; esac
  rf=$(rank "$from")
  if [ -z "$rf" ]; then
    echo "layering: src/$from/ has no rank in tests/layering.sh" >&2
    bad=1
    continue
  fi
  for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
    case "$inc" in */*) ;; *) continue ;; esac
    to=${inc%%/*}
    [ "$to" = "$from" ] && continue
    rt=$(rank "$to")
    [ -z "$rt" ] && continue # outside src/ (tools/, http_parser, ...)
    edges="$edges$from -> $to
"
    if [ "$rt" -ge "$rf" ]; then
      echo "layering: src/$rel includes \"$inc\": $from (rank $rf) may include only lower folders" >&2
      bad=1
    fi
  done
done
[ $graph = 1 ] && printf '%s' "$edges" | sort | uniq -c
[ $bad = 0 ] && echo "layering: ok"
exit $bad
