package registry

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record clashes with another (a duplicate id or name).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is not acceptable; errors.As gives a
	// *ValidationError with the fields.
	ErrInvalid = errors.New("invalid input")
	// ErrBadCredentials: unknown user, wrong password, disabled user, or an
	// unknown, expired or revoked token or session. Deliberately one error.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrLoginThrottled: too many failed logins; errors.As gives a
	// *ThrottleError with the time to wait.
	ErrLoginThrottled = errors.New("too many login attempts")
	// ErrForbidden: the policy denies the action.
	ErrForbidden = errors.New("forbidden")
	// ErrAudit: the audit row could not be written, so the action was refused.
	ErrAudit = errors.New("audit log unavailable")
	// ErrHold: the recorder refused or failed to place a legal hold.
	ErrHold = errors.New("legal hold failed")
)

// FieldError is one rejected field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every rejected field of an input.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// checker collects field errors.
type checker struct{ fields []FieldError }

func (c *checker) add(field, format string, a ...any) {
	c.fields = append(c.fields, FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
}

func (c *checker) err() error {
	if len(c.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: c.fields}
}

func invalid(field, format string, a ...any) error {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: fmt.Sprintf(format, a...)}}}
}

// ThrottleError says how long to wait before the next login attempt.
type ThrottleError struct {
	RetryAfter time.Duration
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("too many login attempts; retry in %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrLoginThrottled) true.
func (e *ThrottleError) Is(target error) bool { return target == ErrLoginThrottled }

// dbErr maps database errors to the registry's sentinels; what names the
// operation for the message.
func dbErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%s: %w: %s", what, ErrConflict, pe.ConstraintName)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%s: %w", what, &ValidationError{Fields: []FieldError{{Field: fkField(pe.ConstraintName), Message: "refers to a record that does not exist"}}})
		case "23514", "22P02", "22001", "22003", "22007", "22008", "23502", "22021", "22P05": // check, text repr, too long, range, datetime
			return fmt.Errorf("%s: %w", what, &ValidationError{Fields: []FieldError{{Field: pe.ColumnName, Message: "value not accepted (" + pe.ConstraintName + ")"}}})
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func fkField(constraint string) string {
	// PostgreSQL names foreign keys table_column_fkey.
	c := strings.TrimSuffix(constraint, "_fkey")
	for _, t := range []string{"incident_camera_overrides_", "incident_investigators_", "incident_prisoners_", "incident_cameras_",
		"incident_staff_", "incident_zones_", "incident_holds_", "prisoner_movements_", "user_facilities_", "api_tokens_",
		"prisoners_", "incidents_", "cameras_", "zones_", "sessions_"} {
		if strings.HasPrefix(c, t) {
			return strings.TrimPrefix(c, t)
		}
	}
	return c
}
