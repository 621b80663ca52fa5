# test/vm/thind/floors.awk : the power-cut test's bookkeeping (part 4 of thind.sh).
#   awk -v epoch=N -f floors.awk FLOORS CONSOLE_LOG > NEW_FLOORS
# FLOORS holds "slot epoch seq": the newest write of each slot known to be durable. The
# console of boot N adds cutwriter's lines: "CW U slot seq" is a FUA write, durable once
# answered; "CW W slot seq" a plain write, durable once a later "CW F" (a flush answered)
# follows it. Lines the cut cut short, or mixed with other output, are dropped: that can only
# make the check expect less.
# FILENAME, not FNR == NR: the floors file is empty after the first boot.
FILENAME == ARGV[1] { if (NF == 3) floor[$1] = $2 " " $3; next }
function durable(slot, seq,   f) {
	if (slot in floor) {
		split(floor[slot], f, " ")
		if (f[1] + 0 == epoch + 0 && f[2] + 0 >= seq + 0)
			return
	}
	floor[slot] = epoch " " seq
}
$0 ~ /^CW [WU] [0-9]+ [0-9]+$/ {
	if ($2 == "U") durable($3, $4)
	else pending[++np] = $3 " " $4
	next
}
$0 == "CW F" {
	for (i = 1; i <= np; i++) { split(pending[i], p, " "); durable(p[1], p[2]) }
	np = 0
}
END { for (s in floor) print s, floor[s] }
