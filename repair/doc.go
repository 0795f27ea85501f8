// Package repair is the consistency engine: entities (the built-in
// profile and configured tables such as order) and what they offer a
// sweep, checks by ID that classify each derived copy by its content, the
// repair matrix and version-guarded repairs, the read path's repair
// queue, and the repair log's model. Sweeps live in repair/sweep, stores
// of the log and sweeps in repair/postgres, leadership and claims in
// repair/leader, alert rules in repair/alert.
package repair
