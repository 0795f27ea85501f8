package dataset

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/ingest"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		state State
		want  ingest.Versions
	}{
		{"never switched", State{}, ingest.Versions{Serving: 1, Writing: []int{1}}},
		{"live build", State{Versions: map[int]Info{2: {State: StateBuilding}}, Builds: map[int]string{2: "b"}},
			ingest.Versions{Serving: 1, Writing: []int{1, 2}}},
		{"dead build", State{Versions: map[int]Info{2: {State: StateBuilding}}}, ingest.Versions{Serving: 1, Writing: []int{1}}},
		{"ready waits for a switch", State{Versions: map[int]Info{2: {State: StateReady}}}, ingest.Versions{Serving: 1, Writing: []int{1, 2}}},
		{"after a switch the previous is kept", State{Active: Active{Version: 3, Previous: 2},
			Versions: map[int]Info{1: {State: StateRetired}, 2: {State: StatePrevious}, 3: {State: StateActive}, 4: {State: StateFailed}}},
			ingest.Versions{Serving: 3, Writing: []int{3, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Plan(tt.state))
		})
	}
	require.Equal(t, 5, State{Active: Active{Version: 3}, Versions: map[int]Info{4: {State: StateFailed}}}.NextVersion())
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	c := DefaultConfig()
	c.EtcdPrefix, c.SessionTTL = "triad", 0
	err := c.Validate()
	require.ErrorContains(t, err, "dataset.etcd_prefix")
	require.ErrorContains(t, err, "dataset.session_ttl")
}
