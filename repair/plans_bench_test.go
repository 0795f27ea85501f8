package repair_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/repair"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
)

// BenchmarkPlan10k: a plan of 10,000 consistent profiles (the most a
// plan takes) against the real stores: the dry run reads them 250 at a
// time, logs each chunk's no-ops and keeps none of them, so nothing is
// saved (ErrPlanEmpty). What one plan costs in time and allocations.
func BenchmarkPlan10k(b *testing.B) {
	s := repairtest.New(b)
	s.Consistent(b, 1, 10000, "a")
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	r := repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool()))
	p := repair.NewPlanner(r, repairpg.NewPlans(s.NS.Pool()))
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = strconv.Itoa(i + 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, err := p.Create(b.Context(), repair.PlanRequest{Entity: "profile", Keys: keys, Source: "bench", Actor: "b"})
		require.ErrorIs(b, err, repair.ErrPlanEmpty)
	}
}
