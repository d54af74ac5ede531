//go:build !race

package channeltest_test

const raceEnabled = false
