#!/usr/bin/env bash
# Runs every fuzz target in the module, one at a time, for FUZZTIME each
# (default 10s). Targets are found by `func FuzzXxx(` in *_test.go files.
# Used by `make test` (short runs) and `make fuzz` (FUZZTIME=2m).
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
go=${GO:-go}

mapfile -t hits < <(grep -rE --include='*_test.go' --exclude-dir=testdata --exclude-dir=vendor --exclude-dir=.git \
	-o '^func Fuzz[A-Za-z0-9_]*\(' . | sort -u)

if ((${#hits[@]} == 0)); then
	echo "fuzz: no Fuzz targets found"
	exit 0
fi

for hit in "${hits[@]}"; do
	file=${hit%%:*}
	name=${hit#*:func }
	name=${name%(}
	pkg=./$(dirname "${file#./}")
	echo "+ $go test -run '^\$' -fuzz '^$name\$' -fuzztime $fuzztime $pkg"
	"$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg"
done
