package viewer

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kuzet/kuzet/registry"
)

var fuzzNow = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

// checkDecoded asserts the contract of an API body decoder on arbitrary
// bytes: it never panics; it refuses with a bad request (4xx before any
// record is read) or a validation error, nothing else; and what it accepts
// survives a round trip through JSON and is accepted again.
func checkDecoded[T any](t *testing.T, b []byte, decode func([]byte) (T, error)) {
	in, err := decode(b)
	if err != nil {
		var br *apiBadRequest
		if !errors.As(err, &br) && !errors.Is(err, registry.ErrInvalid) {
			t.Fatalf("refused with %T %v, want a bad request or a validation error", err, err)
		}
		if errors.As(err, &br) && (br.status < 400 || br.status > 499) {
			t.Fatalf("bad request with status %d", br.status)
		}
		return
	}
	again, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("accepted input does not marshal: %v", err)
	}
	in2, err := decode(again)
	if err != nil {
		t.Fatalf("accepted input %s refused after a round trip: %v", again, err)
	}
	twice, _ := json.Marshal(in2)
	if !bytes.Equal(again, twice) {
		t.Fatalf("round trip changed the input:\n%s\n%s", again, twice)
	}
}

func FuzzDecodeIncident(f *testing.F) {
	f.Add([]byte(`{"facility":"f16","type":"fight","severity":"serious","start":"2025-03-10T09:00:00Z","description":"x","zones":["yard"]}`))
	f.Add([]byte(`{"severity":"critical","end":"2025-03-10T09:30:00+02:00","involved_staff":[3,4]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecoded(t, b, func(b []byte) (registry.IncidentInput, error) { return decodeIncident(b, true, fuzzNow) })
		checkDecoded(t, b, func(b []byte) (registry.IncidentInput, error) { return decodeIncident(b, false, fuzzNow) })
	})
}

func FuzzDecodeUser(f *testing.F) {
	f.Add([]byte(`{"username":"olga","password":"a long password","roles":["operator"],"facilities":["f16"]}`))
	f.Add([]byte(`{"disabled":true,"all_facilities":false}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecoded(t, b, func(b []byte) (registry.UserInput, error) { return decodeUser(b, true) })
		checkDecoded(t, b, func(b []byte) (registry.UserInput, error) { return decodeUser(b, false) })
	})
}
