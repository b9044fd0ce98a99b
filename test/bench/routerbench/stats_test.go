package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0.01, 1}, {0.1, 1}, {0.11, 2},
	} {
		if got := Percentile(xs, c.q); got != c.want {
			t.Errorf("p%g = %g, want %g", c.q*100, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("Percentile sorted its argument")
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("the percentile of nothing is not 0")
	}
}

func TestRoundAndMs(t *testing.T) {
	if got := round(1.23456, 2); got != 1.23 {
		t.Errorf("round = %g", got)
	}
	if got := ms(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("ms = %g", got)
	}
}

func TestProcessCPUGrows(t *testing.T) {
	before := processCPU()
	x := 0
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); {
		x++
	}
	if after := processCPU(); after <= before || x == 0 {
		t.Fatalf("process CPU did not grow while spinning: %s then %s", before, after)
	}
}
