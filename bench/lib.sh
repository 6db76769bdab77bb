# lib.sh holds the helpers bench/noop.sh and bench/vault.sh share; they
# source it. It defines functions and hz only, and runs nothing.

# median prints the median of the numbers on stdin (mean of the middle two
# for an even count).
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# field NAME LINE prints the value of NAME=value in a summary line,
# without a unit.
field() {
	tr ' ' '\n' <<<"$2" | sed -n "s/^$1=\([0-9.]*\).*/\1/p"
}

# Where the two cores went during a run: the server's and loadgen's CPU
# time, and what the rest of the machine used ("other") or the hypervisor
# took ("steal"). Both of the last two should be near 0 for a clean run.
hz=$(getconf CLK_TCK)
cpu_stat() { # prints: busy steal (ticks, all CPUs)
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat
}
proc_ticks() { # prints utime + stime of pid $1, in ticks
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
