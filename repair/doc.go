// Package repair will hold the consistency engine: entities, store readers
// and repairers, checks by ID, sweeps, the repair matrix, the repair log and
// alert rules (issues 5 and 7). So far it holds leader, the etcd election
// that picks the one replica running singleton jobs.
package repair
