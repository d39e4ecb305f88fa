package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// SessionError is why one camera session ended. Its text never holds
// credentials.
type SessionError struct {
	Camera string
	Reason OfflineReason
	// Detail describes the cause, redacted.
	Detail string
	err    error
}

func (e *SessionError) Error() string {
	if e.Detail == "" {
		return "camera " + e.Camera + ": " + string(e.Reason)
	}
	return "camera " + e.Camera + ": " + string(e.Reason) + ": " + e.Detail
}

// Unwrap returns the underlying error, for errors.Is against io.EOF,
// syscall errors and the like. Its text may not be redacted: log the
// SessionError, not what it wraps.
func (e *SessionError) Unwrap() error { return e.err }

// errUnsupportedCodec is the cause of an OfflineUnsupportedCodec session end.
type errUnsupportedCodec struct{ codec string }

func (e errUnsupportedCodec) Error() string { return "unsupported codec " + e.codec }

// errReadTimeout: no RTP for ReadTimeout.
var errReadTimeout = errors.New("no media received within the read timeout")

// classify maps the error that ended a session to an offline reason.
func classify(err error) OfflineReason {
	var (
		status   liberrors.ErrClientBadStatusCode
		netErr   net.Error
		dnsErr   *net.DNSError
		recErr   tls.RecordHeaderError
		certErr  *tls.CertificateVerificationError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		alertErr tls.AlertError
		codecErr errUnsupportedCodec
	)
	switch {
	case err == nil:
		return OfflineError
	case errors.As(err, &codecErr):
		return OfflineUnsupportedCodec
	case errors.Is(err, errReadTimeout):
		return OfflineTimeout
	case errors.Is(err, context.Canceled), errors.As(err, new(liberrors.ErrClientTerminated)):
		return OfflineStopped
	case errors.As(err, &status):
		switch status.Code {
		case base.StatusUnauthorized, base.StatusForbidden:
			return OfflineAuthFailed
		case base.StatusNotFound:
			return OfflineNotFound
		}
		return OfflineProtocol
	case errors.As(err, new(liberrors.ErrClientAuthSetup)):
		return OfflineAuthFailed
	case errors.As(err, new(liberrors.ErrClientTCPTimeout)),
		errors.As(err, new(liberrors.ErrClientUDPTimeout)),
		errors.As(err, new(liberrors.ErrClientRequestTimedOut)):
		return OfflineTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return OfflineRefused
	case errors.As(err, &dnsErr), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return OfflineUnreachable
	case errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &unkAuth),
		errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &alertErr):
		return OfflineTLS
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return OfflineEOF
	case errors.As(err, &netErr) && netErr.Timeout():
		return OfflineTimeout
	case errors.As(err, new(liberrors.ErrClientSDPInvalid)),
		errors.As(err, new(liberrors.ErrClientContentTypeMissing)),
		errors.As(err, new(liberrors.ErrClientContentTypeUnsupported)),
		errors.As(err, new(liberrors.ErrClientTransportHeaderInvalid)),
		errors.As(err, new(liberrors.ErrClientSessionHeaderInvalid)),
		errors.As(err, new(liberrors.ErrClientUnexpectedFrame)),
		errors.As(err, new(liberrors.ErrClientUnhandledMethod)):
		return OfflineProtocol
	}
	if strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:") {
		return OfflineTLS
	}
	return OfflineError
}

// redactor removes a camera's credentials from text that may quote them.
type redactor struct{ secrets []string }

func newRedactor(username, password string) redactor {
	var r redactor
	// Longest first, so that "user:pass" goes before "pass".
	if username != "" && password != "" {
		r.secrets = append(r.secrets, username+":"+password)
	}
	if len(password) >= 1 {
		r.secrets = append(r.secrets, password)
	}
	return r
}

func (r redactor) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "REDACTED")
	}
	return s
}
