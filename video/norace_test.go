//go:build !race

package video

const raceEnabled = false
const raceJoins = 0
