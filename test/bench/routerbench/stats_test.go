package main

import (
	"testing"
	"time"
)

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
