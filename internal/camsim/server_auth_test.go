package camsim

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
)

// describe sends one DESCRIBE on a new connection, first without
// credentials to learn the challenge, then (if user is set) with credentials
// for the challenge of method ("Basic" or "Digest").
func describe(t *testing.T, addr, path, method, user, pass string) *base.Response {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	c := conn.NewConn(nc)
	u, err := base.ParseURL("rtsp://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	req := &base.Request{Method: base.Describe, URL: u, Header: base.Header{"CSeq": base.HeaderValue{"1"}}}
	if err := c.WriteRequest(req); err != nil {
		t.Fatal(err)
	}
	res, err := c.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	if user == "" || res.StatusCode != base.StatusUnauthorized {
		return res
	}
	var challenge base.HeaderValue
	for _, v := range res.Header["WWW-Authenticate"] {
		if strings.HasPrefix(v, method+" ") {
			challenge = append(challenge, v)
		}
	}
	if len(challenge) == 0 {
		t.Fatalf("no %s challenge in %v", method, res.Header["WWW-Authenticate"])
	}
	sender := &auth.Sender{WWWAuth: challenge, User: user, Pass: pass}
	if err := sender.Initialize(); err != nil {
		t.Fatal(err)
	}
	req = &base.Request{Method: base.Describe, URL: u, Header: base.Header{"CSeq": base.HeaderValue{"2"}}}
	sender.AddAuthorization(req)
	if !strings.HasPrefix(req.Header["Authorization"][0], method+" ") {
		t.Fatalf("authorization %q does not use %s", req.Header["Authorization"][0], method)
	}
	if err := c.WriteRequest(req); err != nil {
		t.Fatal(err)
	}
	res, err = c.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{Cameras: 2, Username: "operator", Password: "s3cret!pass"})

	res := describe(t, s.Addr(), "/cam/1", "", "", "")
	if res.StatusCode != base.StatusUnauthorized {
		t.Fatalf("no credentials: status %d, want 401", res.StatusCode)
	}
	var basic, digest bool
	for _, v := range res.Header["WWW-Authenticate"] {
		basic = basic || strings.HasPrefix(v, "Basic ")
		digest = digest || strings.HasPrefix(v, "Digest ")
	}
	if !basic || !digest {
		t.Errorf("challenges %v, want Basic and Digest", res.Header["WWW-Authenticate"])
	}

	for _, tc := range []struct {
		name, method, user, pass string
		want                     base.StatusCode
	}{
		{"basic", "Basic", "operator", "s3cret!pass", base.StatusOK},
		{"digest", "Digest", "operator", "s3cret!pass", base.StatusOK},
		{"basic wrong password", "Basic", "operator", "wrong", base.StatusUnauthorized},
		{"digest wrong password", "Digest", "operator", "wrong", base.StatusUnauthorized},
		{"digest wrong user", "Digest", "admin", "s3cret!pass", base.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := describe(t, s.Addr(), "/cam/2", tc.method, tc.user, tc.pass)
			if res.StatusCode != tc.want {
				t.Errorf("status %d, want %d", res.StatusCode, tc.want)
			}
			if tc.want == base.StatusOK && !strings.Contains(string(res.Body), "m=video") {
				t.Errorf("no SDP in the answer: %q", res.Body)
			}
		})
	}

	// A full client: playing with the right password, refused with a wrong one.
	t.Run("client", func(t *testing.T) {
		u := strings.Replace(s.URL(1), "rtsp://", "rtsp://operator:s3cret!pass@", 1)
		c, err := dial(t, u)
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 3)
		_, err = dial(t, strings.Replace(s.URL(1), "rtsp://", "rtsp://operator:nope@", 1))
		if !isStatus(err, base.StatusUnauthorized) {
			t.Errorf("wrong password: %v, want 401", err)
		}
	})
}
