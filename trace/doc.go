// Package trace will hold the cross-language trace aggregator: OTLP
// receivers, span storage, assembly and rendering (issue 6). It holds no code yet.
package trace
