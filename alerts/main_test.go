package alerts

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the service's
// loops, detector readers, webhook deliveries and SSE streams all stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
