// Package sweep compares whole entities across their stores: segment
// digests recomputed from content (labels narrow, never prove), the
// Elasticsearch _seq_no checkpoint that makes a steady-state sweep cost
// the write rate, orphan scans, the recheck and repair of what drifted,
// and the persisted form spread over replicas (Worker, Scheduler).
package sweep
