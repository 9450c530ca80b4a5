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

log=$(mktemp)
trap 'rm -f "$log"' EXIT

for hit in "${hits[@]}"; do
	file=${hit%%:*}
	name=${hit#*:func }
	name=${name%(}
	pkg=./$(dirname "${file#./}")
	corpus=$pkg/testdata/fuzz/$name
	for try in 1 2; do
		before=$(ls "$corpus" 2>/dev/null | sort || true)
		echo "+ $go test -run '^\$' -fuzz '^$name\$' -fuzztime $fuzztime $pkg"
		if "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
			break
		fi
		out=$(<"$log")
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		# Go 1.26's fuzz coordinator can fail a target at the end of
		# -fuzztime with a bare "context deadline exceeded" and no input
		# (golang/go#75804, fixed in Go 1.27): run that target once more.
		# A failing input (a new file in testdata/fuzz) always fails.
		if ((try == 1)) && [[ $before == "$after" ]] &&
			grep -q '^    context deadline exceeded$' <<<"$out" &&
			! grep -q -e '--- FAIL: .*/' -e 'Failing input written' <<<"$out"; then
			echo "fuzz: $name: the fuzzing engine stopped on its own deadline with no failing input (golang/go#75804); running it again"
			continue
		fi
		exit 1
	done
done
