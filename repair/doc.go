// Package repair will hold the consistency engine: entities, store readers
// and repairers, checks by ID, sweeps, the repair matrix, the repair log and
// alert rules (issues 5 and 7). It holds no code yet.
package repair
