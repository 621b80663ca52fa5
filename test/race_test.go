//go:build race

package test

// raceEnabled: the tests run under -race, so the daemon they drive is
// built with -race too, and a data race it reports fails the test.
const raceEnabled = true
