package camsim

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if urls := os.Getenv(benchReaderEnv); urls != "" {
		// A reader process of BenchmarkCameraCPU, not a test run.
		if err := runBenchReader(strings.Fields(urls)); err != nil {
			fmt.Fprintln(os.Stderr, "bench reader:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
