package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var keyTests = []struct {
	name string
	key  string
	ok   bool
}{
	{"one segment", "a", true},
	{"nested", "a/b/c", true},
	{"segment key", "F16/cam-1/2026/11/21/15/20261121T152200.000Z-7-000042.mp4", true},
	{"space", "a b/c", true},
	{"UTF-8", "ключ/файл", true},
	{"dots inside", "a..b/c.", true},
	{"longest", strings.Repeat("k", MaxKeyLen), true},
	{"empty", "", false},
	{"absolute", "/a", false},
	{"trailing slash", "a/", false},
	{"empty segment", "a//b", false},
	{"dot", ".", false},
	{"dotdot", "..", false},
	{"dotdot escape", "../etc/passwd", false},
	{"dotdot inside", "a/../../b", false},
	{"hidden", ".hold.x", false},
	{"hidden nested", "a/.tmp-1", false},
	{"backslash", `a\..\..\b`, false},
	{"NUL", "a\x00", false},
	{"tab", "a\tb", false},
	{"DEL", "a\x7f", false},
	{"not UTF-8", "a/\xc3", false},
	{"too long", strings.Repeat("k", MaxKeyLen+1), false},
}

func TestValidateKey(t *testing.T) {
	for _, tt := range keyTests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKey(tt.key)
			if tt.ok && err != nil {
				t.Fatalf("ValidateKey(%q) = %v, want ok", tt.key, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, want ErrInvalidKey", tt.key, err)
			}
		})
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, tt := range keyTests {
		f.Add(tt.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		// An accepted key stays below the root on every platform's path
		// rules and round-trips through the path mapping.
		if !filepath.IsLocal(filepath.FromSlash(key)) {
			t.Fatalf("accepted key %q is not local", key)
		}
		if filepath.ToSlash(filepath.Clean(filepath.FromSlash(key))) != key {
			t.Fatalf("accepted key %q is not clean", key)
		}
		if strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("accepted key %q has a backslash or NUL", key)
		}
		if validatePrefix(key) != nil {
			t.Fatalf("accepted key %q is not a valid prefix", key)
		}
	})
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"F16", "cam-03", "a_b", "Z", strings.Repeat("x", 64)} {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", 65), "a/b", "a.b", "a b", "ä", "..", "a\x00"} {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}

func TestSegmentKey(t *testing.T) {
	msk := time.FixedZone("MSK", 3*3600)
	tests := []struct {
		name string
		in   SegmentName
		want string
		err  bool
	}{
		{"example", SegmentName{"F16", "cam-03", time.Date(2026, 11, 21, 15, 22, 0, 0, time.UTC), 7, 42},
			"F16/cam-03/2026/11/21/15/20261121T152200.000Z-7-000042.mp4", false},
		{"milliseconds truncated", SegmentName{"F16", "c", time.Date(2026, 1, 2, 3, 4, 5, 678_999_999, time.UTC), 0, 0},
			"F16/c/2026/01/02/03/20260102T030405.678Z-0-000000.mp4", false},
		{"local time converted to UTC across a day", SegmentName{"F47", "c", time.Date(2026, 1, 1, 1, 30, 0, 0, msk), 1, 1},
			"F47/c/2025/12/31/22/20251231T223000.000Z-1-000001.mp4", false},
		{"large numbers", SegmentName{"F", "c", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1<<64 - 1, 12345678},
			"F/c/2026/01/01/00/20260101T000000.000Z-18446744073709551615-12345678.mp4", false},
		{"bad facility", SegmentName{"F/16", "c", time.Now(), 0, 0}, "", true},
		{"empty camera", SegmentName{"F16", "", time.Now(), 0, 0}, "", true},
		{"camera with dot", SegmentName{"F16", "..", time.Now(), 0, 0}, "", true},
		{"zero time", SegmentName{"F16", "c", time.Time{}, 0, 0}, "", true},
		{"year 10000", SegmentName{"F16", "c", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), 0, 0}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Key()
			if tt.err {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("Key() = %q, %v; want ErrInvalidKey", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Key() = %q, %v; want %q", got, err, tt.want)
			}
			if err := ValidateKey(got); err != nil {
				t.Fatalf("segment key %q is not a valid key: %v", got, err)
			}
			back, err := ParseSegmentKey(got)
			if err != nil {
				t.Fatalf("ParseSegmentKey(%q): %v", got, err)
			}
			want := tt.in
			want.Start = want.Start.UTC().Truncate(time.Millisecond)
			if !back.Start.Equal(want.Start) || back.Facility != want.Facility || back.Camera != want.Camera ||
				back.Run != want.Run || back.Seq != want.Seq {
				t.Fatalf("ParseSegmentKey(%q) = %+v, want %+v", got, back, want)
			}
			if k, err := SegmentKey(tt.in.Facility, tt.in.Camera, tt.in.Start, tt.in.Run, tt.in.Seq); err != nil || k != got {
				t.Fatalf("SegmentKey = %q, %v; want %q", k, err, got)
			}
		})
	}
}

func TestSegmentKeysSortInTimeOrder(t *testing.T) {
	base := time.Date(2026, 11, 21, 15, 59, 59, 0, time.UTC)
	var prev string
	for i := range 100 {
		k, err := SegmentKey("F16", "c", base.Add(time.Duration(i)*317*time.Millisecond), 3, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if k <= prev {
			t.Fatalf("key %q sorts before the earlier %q", k, prev)
		}
		prev = k
	}
}

var badSegmentKeys = []string{
	"",
	"F16/c/2026/11/21/15/20261121T152200.000Z-7-000042.mp4/x",
	"F16/c/2026/11/21/15/20261121T152200.000Z-7-000042.mkv",
	"F16/c/2026/11/21/16/20261121T152200.000Z-7-000042.mp4", // hour directory disagrees
	"F16/c/2026/11/21/15/20261121T152200.000Z-7-42.mp4",     // seq not padded
	"F16/c/2026/11/21/15/20261121T152200.000Z-07-000042.mp4",
	"F16/c/2026/11/21/15/20261121T152200Z-7-000042.mp4",
	"F16/c/2026/11/21/15/20261121T152200.000Z-7-000042-1.mp4",
	"F16/c/2026/11/21/15/20261121T152200.000Z--7-000042.mp4",
	"F16/c/2026/11/21/15/20261121T152200.000Z-+7-000042.mp4",
	"F.16/c/2026/11/21/15/20261121T152200.000Z-7-000042.mp4",
	"../c/2026/11/21/15/20261121T152200.000Z-7-000042.mp4",
	"F16/c/2026/11/21/15/20261321T152200.000Z-7-000042.mp4",
	"F16/c/2026/11/21/15/20261121T152200.000Z-18446744073709551616-000042.mp4",
}

func TestParseSegmentKeyRejects(t *testing.T) {
	for _, k := range badSegmentKeys {
		if n, err := ParseSegmentKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseSegmentKey(%q) = %+v, %v; want ErrInvalidKey", k, n, err)
		}
	}
}

func FuzzParseSegmentKey(f *testing.F) {
	f.Add("F16/cam-03/2026/11/21/15/20261121T152200.000Z-7-000042.mp4")
	for _, k := range badSegmentKeys {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		n, err := ParseSegmentKey(key)
		if err != nil {
			return
		}
		back, err := n.Key()
		if err != nil || back != key {
			t.Fatalf("ParseSegmentKey(%q) = %+v, whose Key() is %q, %v", key, n, back, err)
		}
		if err := ValidateKey(key); err != nil {
			t.Fatalf("parsed segment key %q is not a valid key: %v", key, err)
		}
	})
}
