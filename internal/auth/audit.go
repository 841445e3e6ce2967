package auth

import "context"

// Audit is what a handler adds to the audit line of the request it
// serves: the resource it acted on, when only the handler knows it (the id
// of a key it created). Its methods are safe on a nil *Audit.
type Audit struct {
	resource string
}

type auditKey struct{}

// WithAudit returns ctx carrying a fresh Audit, and the Audit.
func WithAudit(ctx context.Context) (context.Context, *Audit) {
	a := &Audit{}
	return context.WithValue(ctx, auditKey{}, a), a
}

// AuditFrom returns the request's Audit, or nil when nobody audits it.
func AuditFrom(ctx context.Context) *Audit {
	a, _ := ctx.Value(auditKey{}).(*Audit)
	return a
}

// SetResource names the resource the request acted on.
func (a *Audit) SetResource(resource string) {
	if a != nil {
		a.resource = resource
	}
}

// Resource returns the resource a handler named, or def.
func (a *Audit) Resource(def string) string {
	if a == nil || a.resource == "" {
		return def
	}
	return a.resource
}
