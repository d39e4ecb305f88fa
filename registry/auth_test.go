package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func (e *env) user(t *testing.T, name, password string, roles []Role, facilities ...string) User {
	t.Helper()
	in := UserInput{Username: name, Roles: &roles, Facilities: &facilities}
	if password != "" {
		in.Password = &password
	}
	u, err := e.reg.CreateUser(context.Background(), admin, in)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPasswordHashRoundTripAndRejectsGarbage(t *testing.T) {
	t.Parallel()
	p := PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}
	h, err := hashPassword("correct horse battery", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if ok, err := checkPassword("correct horse battery", h); !ok || err != nil {
		t.Fatalf("right password: %t %v", ok, err)
	}
	if ok, _ := checkPassword("correct horse batterz", h); ok {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "$argon2id$v=19$m=64,t=0,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"} {
		if ok, err := checkPassword("x", bad); ok || err == nil {
			t.Errorf("%q: ok=%t err=%v", bad, ok, err)
		}
	}
}

func TestLoginSessionIdleTimeoutAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.SessionIdle = 10 * time.Minute; c.SessionMax = time.Hour })
	e.seedBasic(t)
	u := e.user(t, "olga", "a long enough password", []Role{RoleOperator}, "f16")
	ctx := context.Background()
	s, err := e.reg.Login(ctx, "olga", "a long enough password", "10.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Token == "" || s.CSRF == "" || s.Principal.UserID != u.ID || !s.Principal.InScope("f16") || s.Principal.InScope("f27") {
		t.Fatalf("session %+v", s)
	}
	// Used within the idle timeout, it lives on past the first 10 minutes.
	for range 3 {
		e.clock.Advance(9 * time.Minute)
		p, csrf, err := e.reg.SessionPrincipal(ctx, s.Token)
		if err != nil || p.Username != "olga" || csrf != s.CSRF {
			t.Fatalf("session in use: %+v %v", p, err)
		}
	}
	// Idle for the timeout, it ends.
	e.clock.Advance(10 * time.Minute)
	if _, _, err := e.reg.SessionPrincipal(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("idle session: %v", err)
	}
	// The absolute limit ends a busy session too.
	s, err = e.reg.Login(ctx, "olga", "a long enough password", "10.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		e.clock.Advance(9 * time.Minute)
		_, _, err = e.reg.SessionPrincipal(ctx, s.Token)
	}
	if !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("session past SessionMax: %v", err)
	}
	s, err = e.reg.Login(ctx, "olga", "a long enough password", "10.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Logout(ctx, Actor{Principal: s.Principal, Client: "10.1.1.1"}, s.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.SessionPrincipal(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("after logout: %v", err)
	}
	// Disabling the user ends its sessions.
	s, _ = e.reg.Login(ctx, "olga", "a long enough password", "10.1.1.1")
	if _, err := e.reg.UpdateUser(ctx, admin, u.ID, UserInput{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.SessionPrincipal(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled user's session: %v", err)
	}
	if _, err := e.reg.Login(ctx, "olga", "a long enough password", "10.1.1.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled user login: %v", err)
	}
	rows, err := e.reg.Audit().List(ctx, AuditFilter{AnyFacility: true})
	if err != nil {
		t.Fatal(err)
	}
	var logins, failed, logouts int
	for _, r := range rows {
		switch r.Action {
		case AuditLogin:
			logins++
		case AuditLoginFailed:
			failed++
			if r.Detail != "user disabled" {
				t.Errorf("failed login detail %q", r.Detail)
			}
		case AuditLogout:
			logouts++
		}
	}
	if logins != 4 || failed != 1 || logouts != 1 {
		t.Fatalf("audit: %d logins, %d failed, %d logouts", logins, failed, logouts)
	}
}

func TestLoginLockoutAndClientRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.LoginMaxFailures = 3
		c.LoginLockout = 5 * time.Minute
		c.LoginClientRate = 10
	})
	e.user(t, "ivan", "the right password", []Role{RoleInvestigator})
	ctx := context.Background()
	for i := range 2 {
		if _, err := e.reg.Login(ctx, "ivan", "wrong password", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, err := e.reg.Login(ctx, "ivan", "wrong password", "10.0.0.2")
	var te *ThrottleError
	if !errors.As(err, &te) || te.RetryAfter != 5*time.Minute {
		t.Fatalf("third failure: %v", err)
	}
	// Locked: even the right password is refused, from any client.
	if _, err := e.reg.Login(ctx, "ivan", "the right password", "10.0.0.3"); !errors.Is(err, ErrLoginThrottled) {
		t.Fatalf("locked login: %v", err)
	}
	// An unknown user name locks the same way (no hint which names exist).
	for range 2 {
		_, _ = e.reg.Login(ctx, "nobody", "x", "10.0.0.4")
	}
	if _, err := e.reg.Login(ctx, "nobody", "x", "10.0.0.4"); !errors.Is(err, ErrLoginThrottled) {
		t.Fatalf("unknown user not locked: %v", err)
	}
	e.clock.Advance(5 * time.Minute)
	if _, err := e.reg.Login(ctx, "ivan", "the right password", "10.0.0.3"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// One client: 10 attempts a minute, then refused without touching users.
	e.clock.Advance(time.Minute)
	var refused int
	for range 15 {
		_, err := e.reg.Login(ctx, "someone", "x", "10.9.9.9")
		if errors.As(err, &te) && strings.Contains(te.Error(), "retry") {
			refused++
		}
	}
	if refused < 5 {
		t.Fatalf("client limit: %d refused", refused)
	}
	rows, err := e.reg.Audit().List(ctx, AuditFilter{AnyFacility: true, Action: AuditLoginFailed})
	if err != nil {
		t.Fatal(err)
	}
	var throttled int
	for _, r := range rows {
		if r.Detail == "client throttled" {
			throttled++
		}
	}
	if throttled != 1 {
		t.Fatalf("client throttling audited %d times, want once per window", throttled)
	}
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedBasic(t)
	u := e.user(t, "vms-bridge", "", []Role{RoleIT}, "f16")
	ctx := context.Background()
	secret, tok, err := e.reg.CreateToken(ctx, admin, u.ID, TokenInput{Name: "bridge", ExpiresAt: ptr(e.clock.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix) {
		t.Fatalf("secret %q", secret)
	}
	var stored int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM api_tokens WHERE token_hash = $1", []byte(secret)).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("token stored in clear: %d %v", stored, err)
	}
	p, err := e.reg.TokenPrincipal(ctx, secret)
	if err != nil || p.UserID != u.ID || p.TokenID != tok.ID || !p.HasRole(RoleIT) {
		t.Fatalf("principal %+v %v", p, err)
	}
	if _, err := e.reg.TokenPrincipal(ctx, secret+"x"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("altered token: %v", err)
	}
	// A user without a password cannot log in.
	if _, err := e.reg.Login(ctx, "vms-bridge", "anything at all", "x"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("password login of token user: %v", err)
	}
	e.clock.Advance(time.Hour)
	if _, err := e.reg.TokenPrincipal(ctx, secret); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("expired token: %v", err)
	}
	secret2, tok2, err := e.reg.CreateToken(ctx, admin, u.ID, TokenInput{Name: "bridge 2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.reg.RevokeToken(ctx, admin, u.ID, tok2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.TokenPrincipal(ctx, secret2); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := e.reg.RevokeToken(ctx, admin, u.ID+1000, tok2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke other user's token: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	op := Principal{UserID: 1, Username: "op", Roles: []Role{RoleOperator}, Facilities: []string{"f16"}}
	inv := Principal{UserID: 2, Username: "inv", Roles: []Role{RoleInvestigator}, Facilities: []string{"f16"}}
	it := Principal{UserID: 3, Username: "it", Roles: []Role{RoleIT}, AllFacilities: true}
	aud := Principal{UserID: 4, Username: "aud", Roles: []Role{RoleAuditor}, AllFacilities: true}
	adm := Principal{UserID: 5, Username: "adm", Roles: []Role{RoleAdmin}, AllFacilities: true}
	admInv := Principal{UserID: 6, Username: "adminv", Roles: []Role{RoleAdmin, RoleInvestigator}, Facilities: []string{"f16", "f27"}}
	none := Principal{UserID: 7, Username: "none", Facilities: []string{"f16"}}
	f16, f27 := InFacility("f16"), InFacility("f27")
	involved := Resource{Facilities: []string{"f16"}, InvolvedStaff: []int64{2}}
	cases := []struct {
		name string
		p    Principal
		a    Action
		r    Resource
		want bool
	}{
		{"operator live own facility", op, ActionLiveView, f16, true},
		{"operator live other facility", op, ActionLiveView, f27, false},
		{"operator no playback", op, ActionFootageView, f16, false},
		{"operator no export", op, ActionFootageExport, f16, false},
		{"operator alerts", op, ActionAlertView, f16, true},
		{"investigator playback", inv, ActionFootageView, f16, true},
		{"investigator playback other facility", inv, ActionFootageView, f27, false},
		{"investigator export", inv, ActionFootageExport, f16, true},
		{"investigator no live", inv, ActionLiveView, f16, false},
		{"involved investigator no playback", inv, ActionFootageView, involved, false},
		{"involved investigator no export", inv, ActionFootageExport, involved, false},
		{"involved investigator may read the record", inv, ActionIncidentRead, involved, true},
		{"involved investigator may not change it", inv, ActionIncidentWrite, involved, false},
		{"involved investigator may not release its hold", inv, ActionHoldChange, involved, false},
		{"it health", it, ActionCameraHealth, f27, true},
		{"it no pixels live", it, ActionLiveView, f16, false},
		{"it no pixels playback", it, ActionFootageView, f16, false},
		{"it metrics", it, ActionMetricsRead, Resource{}, true},
		{"auditor audit", aud, ActionAuditRead, Resource{}, true},
		{"auditor no live", aud, ActionLiveView, f16, false},
		{"auditor cannot write users", aud, ActionUserWrite, Resource{}, false},
		{"admin users", adm, ActionUserWrite, Resource{AllFacilities: true}, true},
		{"admin no footage", adm, ActionFootageView, f16, false},
		{"admin no live", adm, ActionLiveView, f16, false},
		{"admin no audit", adm, ActionAuditRead, Resource{}, false},
		{"admin+investigator footage", admInv, ActionFootageView, f27, true},
		{"scoped admin cannot touch all-facility users", admInv, ActionUserWrite, Resource{AllFacilities: true}, false},
		{"multi-facility resource needs all", admInv, ActionCameraWrite, Resource{Facilities: []string{"f16", "f47"}}, false},
		{"no roles", none, ActionFacilityRead, f16, false},
		{"unauthenticated", Principal{Roles: []Role{RoleAdmin}, AllFacilities: true}, ActionFacilityRead, f16, false},
		{"unknown action", adm, Action("everything"), f16, false},
	}
	for _, tc := range cases {
		if got := (Policy{}).Can(tc.p, tc.a, tc.r); got != tc.want {
			t.Errorf("%s: Can = %t, want %t", tc.name, got, tc.want)
		}
	}
	// Every action is granted to some role, and no role is granted an
	// action outside the list.
	for _, a := range Actions() {
		granted := false
		for _, r := range Roles() {
			granted = granted || contains(grants(r), a)
		}
		if !granted {
			t.Errorf("action %s granted to no role", a)
		}
	}
	for _, r := range Roles() {
		for _, a := range grants(r) {
			if !contains(Actions(), a) {
				t.Errorf("role %s granted unlisted action %s", r, a)
			}
		}
	}
}

func TestBootstrapAdminOnlyOnAnEmptyRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.reg.BootstrapAdmin(ctx, System("test"), "Bad Name"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	pw, created, err := e.reg.BootstrapAdmin(ctx, System("test"), "root")
	if err != nil || !created || len(pw) < MinPasswordLen {
		t.Fatalf("first: %q %t %v", pw, created, err)
	}
	s, err := e.reg.Login(ctx, "root", pw, "local")
	if err != nil || !s.Principal.HasRole(RoleAdmin) || !s.Principal.AllFacilities {
		t.Fatalf("login as the first admin: %+v %v", s.Principal, err)
	}
	pw2, created, err := e.reg.BootstrapAdmin(ctx, System("test"), "second")
	if err != nil || created || pw2 != "" {
		t.Fatalf("second: %q %t %v", pw2, created, err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil || n != 1 {
		t.Fatalf("users: %d %v", n, err)
	}
}
