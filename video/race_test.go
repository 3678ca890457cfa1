//go:build race

package video

const raceEnabled = true

// raceJoins is the join/leave count under the race detector, where a pion
// handshake costs ~10x more CPU; without -race the test does 1,000.
const raceJoins = 150
