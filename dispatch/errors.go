package dispatch

import "errors"

// ErrNotFound reports an id that names no call, incident or unit.
var ErrNotFound = errors.New("not found")

// ErrInvalid reports a command whose content is wrong (missing field, value
// out of range). The wrapped message says which field and why.
var ErrInvalid = errors.New("invalid")

// ErrTransition reports a status change the state machine does not allow
// from the current status.
var ErrTransition = errors.New("status change not allowed")

// ErrUnitBusy reports a unit that is already on another active incident or
// not available for assignment.
var ErrUnitBusy = errors.New("unit not available")

// ErrForbidden reports an actor that may not do this to this object (an
// officer acting for another unit, a non-supervisor reopening).
var ErrForbidden = errors.New("forbidden")

// ErrBusy reports a command that kept conflicting with concurrent changes
// and gave up; the client may retry with the same idempotency key.
var ErrBusy = errors.New("too many concurrent changes; retry")
