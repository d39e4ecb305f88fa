package camsim

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
)

// rawClient is a minimal RTSP client that keeps every interleaved frame as
// it came off the wire, with no RTP checks: it sees what a camera sends even
// where a full client would filter.
type rawClient struct {
	nc   net.Conn
	conn *conn.Conn
	cseq int

	mu     sync.Mutex
	frames []rawFrame
	done   chan struct{}
}

type rawFrame struct {
	channel int
	payload []byte
	at      time.Time
}

// rawPlay connects to url, sets up every media over TCP and plays.
func rawPlay(t *testing.T, url string) *rawClient {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawClient{nc: nc, conn: conn.NewConn(nc), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()

	res, err := r.do(&base.Request{Method: base.Describe, URL: u, Header: base.Header{"Accept": base.HeaderValue{"application/sdp"}}})
	if err != nil {
		t.Fatal(err)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(res.Body); err != nil {
		t.Fatal(err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		t.Fatal(err)
	}
	var session string
	for i, m := range desc.Medias {
		mu, err := m.URL(u)
		if err != nil {
			t.Fatal(err)
		}
		h := base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=" +
			strconv.Itoa(2*i) + "-" + strconv.Itoa(2*i+1)}}
		if session != "" {
			h["Session"] = base.HeaderValue{session}
		}
		res, err := r.do(&base.Request{Method: base.Setup, URL: mu, Header: h})
		if err != nil {
			t.Fatal(err)
		}
		var sh headers.Session
		if err := sh.Unmarshal(res.Header["Session"]); err != nil {
			t.Fatal(err)
		}
		session = sh.Session
	}
	if _, err := r.do(&base.Request{Method: base.Play, URL: u, Header: base.Header{"Session": base.HeaderValue{session}}}); err != nil {
		t.Fatal(err)
	}
	ok = true
	go r.read()
	t.Cleanup(func() {
		nc.Close()
		<-r.done
	})
	return r
}

func (r *rawClient) do(req *base.Request) (*base.Response, error) {
	r.cseq++
	if req.Header == nil {
		req.Header = base.Header{}
	}
	req.Header["CSeq"] = base.HeaderValue{strconv.Itoa(r.cseq)}
	r.nc.SetDeadline(time.Now().Add(5 * time.Second))
	defer r.nc.SetDeadline(time.Time{})
	if err := r.conn.WriteRequest(req); err != nil {
		return nil, err
	}
	res, err := r.conn.ReadResponse()
	if err != nil {
		return nil, err
	}
	if res.StatusCode != base.StatusOK {
		return res, fmt.Errorf("%s: status %d", req.Method, res.StatusCode)
	}
	return res, nil
}

func (r *rawClient) read() {
	defer close(r.done)
	for {
		v, err := r.conn.Read()
		if err != nil {
			return
		}
		if f, ok := v.(*base.InterleavedFrame); ok {
			r.mu.Lock()
			r.frames = append(r.frames, rawFrame{channel: f.Channel, payload: bytes.Clone(f.Payload), at: time.Now()})
			r.mu.Unlock()
		}
	}
}

func (r *rawClient) snapshot() []rawFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rawFrame(nil), r.frames...)
}
