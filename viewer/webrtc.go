package viewer

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// liveICE holds the network side shared by every WebRTC session: one UDP
// socket (per interface) multiplexed across sessions, one ICE-TCP listener,
// and the setting engine that uses them.
type liveICE struct {
	se         webrtc.SettingEngine
	udp        ice.UDPMux
	tcp        *ice.TCPMuxDefault
	iceServers []webrtc.ICEServer
	nackSize   uint16
	logs       logging.LoggerFactory
}

func newLiveICE(cfg *LiveConfig, log *slog.Logger) (*liveICE, error) {
	x := &liveICE{nackSize: uint16(cfg.NACKBufferPackets), logs: pionLogs{log: log.With("lib", "pion")}}
	se := webrtc.SettingEngine{LoggerFactory: x.logs}
	se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, min(cfg.DisconnectedTimeout/2, 2*time.Second))
	// Browsers hide their host addresses behind mDNS names; the server
	// needs no name lookups to reach them: their checks arrive first and
	// make peer-reflexive candidates. No multicast sockets per session.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// Sessions only send; the browser's offer decides the DTLS roles.
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}

	udp, err := listenICEUDP(cfg.ICEUDPListen, cfg.IncludeLoopback, x.logs)
	if err != nil {
		return nil, err
	}
	x.udp = udp
	se.SetICEUDPMux(udp)
	if !cfg.DisableICETCP {
		ln, err := net.Listen("tcp", cfg.ICETCPListen)
		if err != nil {
			_ = udp.Close()
			return nil, fmt.Errorf("ICE-TCP listen %s: %w", cfg.ICETCPListen, err)
		}
		x.tcp = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:        ln,
			Logger:          x.logs.NewLogger("ice-tcp"),
			ReadBufferSize:  64,
			WriteBufferSize: 1 << 20,
		})
		se.SetICETCPMux(x.tcp)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	if len(cfg.PublicIPs) > 0 {
		for _, ip := range cfg.PublicIPs {
			if net.ParseIP(ip) == nil {
				x.close()
				return nil, fmt.Errorf("public IP %q is not an IP address", ip)
			}
		}
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			x.close()
			return nil, fmt.Errorf("public IPs: %w", err)
		}
	}
	for _, s := range cfg.ICEServers {
		x.iceServers = append(x.iceServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	x.se = se
	return x, nil
}

// listenICEUDP binds the shared UDP port: on one address when the host is
// given, else on every interface.
func listenICEUDP(addr string, loopback bool, logs logging.LoggerFactory) (ice.UDPMux, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ICE UDP address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		p, err := net.LookupPort("udp", port)
		if err != nil {
			return nil, fmt.Errorf("ICE UDP address %q: %w", addr, err)
		}
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(logs.NewLogger("ice-udp"))}
		if loopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		m, err := ice.NewMultiUDPMuxFromPort(p, opts...)
		if err != nil {
			return nil, fmt.Errorf("ICE UDP listen %s: %w", addr, err)
		}
		return m, nil
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("ICE UDP address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("ICE UDP listen %s: %w", addr, err)
	}
	return ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn, Logger: logs.NewLogger("ice-udp")}), nil
}

// udpAddrs returns the bound UDP addresses (tests, logs).
func (x *liveICE) udpAddrs() []net.Addr { return x.udp.GetListenAddresses() }

func (x *liveICE) close() {
	if x.udp != nil {
		_ = x.udp.Close()
	}
	if x.tcp != nil {
		_ = x.tcp.Close()
	}
}

// newPeerConnection builds a peer connection whose media engine holds
// exactly the codecs chosen for the answer, with NACK retransmission and
// RTCP sender reports.
func (x *liveICE) newPeerConnection(ch whepChoice) (*webrtc.PeerConnection, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(ch.video, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("register %s: %w", ch.video.MimeType, err)
	}
	if ch.audio != nil {
		if err := m.RegisterCodec(*ch.audio, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("register %s: %w", ch.audio.MimeType, err)
		}
	}
	return x.peerConnection(m)
}

// peerConnection builds a peer connection on the ICE ports with the codecs
// of m, NACK retransmission and RTCP sender reports.
func (x *liveICE) peerConnection(m *webrtc.MediaEngine) (*webrtc.PeerConnection, error) {
	ir := &interceptor.Registry{}
	resp, err := nack.NewResponderInterceptor(nack.ResponderSize(x.nackSize), nack.WithResponderLoggerFactory(x.logs))
	if err != nil {
		return nil, fmt.Errorf("nack: %w", err)
	}
	ir.Add(resp)
	sr, err := report.NewSenderInterceptor(report.WithSenderLoggerFactory(x.logs))
	if err != nil {
		return nil, fmt.Errorf("sender reports: %w", err)
	}
	ir.Add(sr)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(x.se), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		ICEServers:   x.iceServers,
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	})
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	return pc, nil
}

// watchPeer closes connected when pc first connects and stops the session
// (stop) when the connection fails or closes.
func watchPeer(pc *webrtc.PeerConnection, connected chan struct{}, stop func(cause error)) {
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed:
			stop(errLivePeerFailed)
		case webrtc.PeerConnectionStateClosed:
			stop(errLivePeerClosed)
		}
	})
}

// pionLogs sends pion's logs to slog: its errors and warnings as warnings
// (they are about one peer, never fatal to the service), the rest as debug.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: p.log.With("scope", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(m string)        { l.log.Debug(m) }
func (l pionLogger) Debugf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}
func (l pionLogger) Info(m string) { l.log.Debug(m) }
func (l pionLogger) Infof(f string, a ...any) {
	l.Debugf(f, a...)
}
func (l pionLogger) Warn(m string)             { l.log.Warn(m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(m string)            { l.log.Warn(m) }
func (l pionLogger) Errorf(f string, a ...any) { l.log.Warn(fmt.Sprintf(f, a...)) }
