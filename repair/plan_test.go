package repair

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRepairMatrix is docs/repair-matrix.md, cell by cell: every class in
// a cache-aside store (Redis) and in a store that must hold every record
// (Elasticsearch).
func TestRepairMatrix(t *testing.T) {
	t.Parallel()
	cells := []struct {
		class      Class
		cacheAside bool
		action     string
		refused    bool
	}{
		{ClassOK, true, ActionNone, false}, {ClassOK, false, ActionNone, false},
		{ClassAbsent, true, ActionNone, false}, {ClassAbsent, false, ActionNone, false},
		{ClassAbsentAllowed, true, ActionNone, false},
		{ClassMissing, false, ActionWrite, false},
		{ClassStale, true, ActionWrite, false}, {ClassStale, false, ActionWrite, false},
		{ClassFieldMismatch, true, ActionWrite, false}, {ClassFieldMismatch, false, ActionWrite, false},
		{ClassOrphan, true, ActionDelete, false}, {ClassOrphan, false, ActionDelete, false},
		{ClassOrphanDeleted, true, ActionDelete, false}, {ClassOrphanDeleted, false, ActionDelete, false},
		{ClassAhead, true, ActionWrite, false}, {ClassAhead, false, ActionNone, true},
	}
	for _, c := range cells {
		t.Run(string(c.class)+map[bool]string{true: "/cache", false: "/index"}[c.cacheAside], func(t *testing.T) {
			action, reason := Plan(c.class, c.cacheAside)
			require.Equal(t, c.action, action)
			require.Equal(t, c.refused, reason != nil)
			require.Equal(t, c.action != ActionNone || c.refused, c.class.Drift(), "a repair is planned exactly for drift")
		})
	}
}

// TestClassify covers the comparison itself (no stores).
func TestClassify(t *testing.T) {
	t.Parallel()
	live := Record{Present: true, Version: 5, Digest: 1, Computed: 1, Fields: map[string][]byte{"tags": []byte(`["a"]`)}}
	same := live
	other := live
	other.Fields = map[string][]byte{"tags": []byte(`["b"]`)}
	other.Computed = 2
	older, newer := live, live
	older.Version, newer.Version = 4, 6
	gone := Record{}
	tomb := Record{Present: true, Deleted: true, Version: 7}
	cases := []struct {
		p, d       Record
		cacheAside bool
		want       Class
	}{
		{live, same, false, ClassOK},
		{live, gone, true, ClassAbsentAllowed},
		{live, gone, false, ClassMissing},
		{live, older, true, ClassStale},
		{live, newer, false, ClassAhead},
		{live, other, false, ClassFieldMismatch},
		{gone, live, false, ClassOrphan},
		{tomb, live, true, ClassOrphanDeleted},
		{tomb, gone, false, ClassAbsent},
		{gone, gone, true, ClassAbsent},
	}
	e := fakeEntity{}
	for _, c := range cases {
		got, diff := classify(e, c.p, c.d, c.cacheAside)
		require.Equal(t, c.want, got, "%+v vs %+v", c.p, c.d)
		if got == ClassFieldMismatch {
			require.Equal(t, []string{"tags"}, diff)
		}
	}
}

type fakeEntity struct{}

func (fakeEntity) Name() string                      { return "fake" }
func (fakeEntity) ParseKey(s string) (string, error) { return s, nil }
func (fakeEntity) Primary() Reader                   { return nil }
func (fakeEntity) Derived() []Derived                { return nil }
func (fakeEntity) FieldNames() []string              { return []string{"tags"} }
